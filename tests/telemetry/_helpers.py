"""Helpers of the telemetry and deployment tests: what the daemon exports, what a PromQL expression
names, whether a command line is a real ``cmr-monitor`` command, and a real Prometheus server."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import typer
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from monitor.qc.labels import Structure
from monitor.qc.levels import FlagLevel
from monitor.qc.reasons import ReasonCode
from monitor.qc.records import StructureScore, VolumeScore
from monitor.sim import make_patient, remove_structure
from monitor.store.queue import QueueState
from monitor.telemetry import QueueCollector, build_metrics
from tests.daemon._harness import _to_gz, free_port

__all__ = [
    "PrometheusServer",
    "check_cli_args",
    "exported_metrics",
    "lv_missing_bytes",
    "promql_label_names",
    "promql_metric_names",
    "samples",
    "structure_score",
    "volume_score",
]

_PROMQL_WORDS = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset"})


def structure_score(structure: Structure, pdsc: float, phd_mm: float, flag: FlagLevel) -> StructureScore:
    """A structure's scores, with voxel counts that fit the flag (0 mask voxels when erroneous)."""
    return StructureScore(
        structure=structure,
        pdsc=pdsc,
        phd_mm=phd_mm,
        flag=flag,
        reasons={FlagLevel.OK: (), FlagLevel.SUSPICIOUS: (ReasonCode.PHD_HIGH,)}.get(
            flag, (ReasonCode.MISSING,)
        ),
        mask_voxels=0 if flag == FlagLevel.ERRONEOUS else 100,
        pgt_voxels=100,
        mask_volume_ml=1.0,
    )


def volume_score(*structures: StructureScore) -> VolumeScore:
    """A small volume's scores; its flag is the worst of the structures'."""
    worst = max((s.flag for s in structures), key=lambda level: level.severity)
    return VolumeScore(
        structures=structures, flag=worst, shape=(4, 96, 96), spacing_mm=(8.0, 1.5, 1.5), slices_scored=4
    )


def exported_metrics() -> dict[str, frozenset[str]]:
    """Every sample name the daemon exports (``_total``, ``_bucket``, ``_info``, ...) with its label
    names, from ``build_metrics`` and the queue collector with one of everything recorded."""
    registry = CollectorRegistry()
    metrics = build_metrics(registry)
    metrics.record_received("unet", "1.0")
    metrics.record_rejected("unet", "1.0", "corrupt")
    metrics.record_claimed(0.1)
    volume = volume_score(structure_score(Structure.LV, 0.9, 5.0, FlagLevel.OK))
    metrics.record_scored("unet", "1.0", volume, latency_s=0.1)
    metrics.batch_duration.observe(0.1)
    metrics.transient_errors.labels(kind="database").inc()
    metrics.set_model(checkpoint_sha256="0" * 64)
    stamp = datetime.now(UTC)
    registry.register(
        QueueCollector(
            lambda: QueueState(pending=1, scoring=1, oldest_pending_received_at=stamp, last_scored_at=stamp)
        )
    )
    names: dict[str, set[str]] = {}
    for family in registry.collect():
        for sample in family.samples:
            names.setdefault(sample.name, set()).update(sample.labels)
    return {name: frozenset(labels) for name, labels in names.items()}


def promql_metric_names(expr: str) -> set[str]:
    """Metric names an expression selects: every ``cmr_monitor_*`` token and every identifier followed by
    a label matcher or a range (``up{...}``, ``x[5m]``)."""
    names = set(re.findall(r"\bcmr_monitor_[a-zA-Z0-9_]+", expr))
    for name in re.findall(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\s*[\{\[]", expr):
        if name not in _PROMQL_WORDS:
            names.add(name)
    return names


def promql_label_names(expr: str) -> set[str]:
    """Label names an expression groups or matches on (``by (...)``, ``on (...)``, ``{name="..."}``)."""
    found: set[str] = set()
    for group in re.findall(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)", expr):
        found.update(part.strip() for part in group.split(",") if part.strip())
    for matchers in re.findall(r"\{([^}]*)\}", expr):
        found.update(re.findall(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)", matchers))
    return found


def check_cli_args(args: list[str]) -> Any:
    """Fail unless ``args`` (after the program name) is a real ``cmr-monitor`` command line: the
    subcommand exists, every ``--option`` is one of its options and gets a value when it takes one,
    and positional words only go to a command that takes arguments. Returns the (click) command.

    Typer vendors its own click, so groups, options and arguments are told apart by their attributes.
    """
    from monitor.cli import app

    command = typer.main.get_command(app)
    words = list(args)
    trail = ["cmr-monitor"]
    while hasattr(command, "commands"):
        assert words, f"{' '.join(trail)} needs a subcommand"
        name = words.pop(0)
        assert name in command.commands, f"{name!r} is not a subcommand of {' '.join(trail)}"
        command = command.commands[name]
        trail.append(name)
    options = {
        opt: param
        for param in command.params
        if param.param_type_name == "option"
        for opt in (*param.opts, *param.secondary_opts)
    }
    takes_arguments = any(param.param_type_name == "argument" for param in command.params)
    i = 0
    while i < len(words):
        word = words[i]
        if word.startswith("-") and word != "-":
            name, has_value, _ = word.partition("=")
            assert name in options, f"{' '.join(trail)} has no option {name}"
            if not options[name].is_flag and not has_value:
                i += 1
                assert i < len(words), f"{name} of {' '.join(trail)} needs a value"
        else:
            assert takes_arguments, f"{' '.join(trail)} takes no argument, got {word!r}"
        i += 1
    return command


def samples(body: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """A Prometheus text exposition as {(sample name, labels): value}."""
    out: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


def lv_missing_bytes(seed: int) -> bytes:
    """A small mask (4 slices of 96 x 96, ACDC labels) with the LV cavity missing: always erroneous."""
    ed, _ = make_patient(np.random.default_rng(seed), n_slices=4, shape_yx=(96, 96))
    labels = remove_structure(ed.labels, Structure.LV)
    return _to_gz(nib.Nifti1Image(np.ascontiguousarray(labels.transpose(2, 1, 0)), ed.affine))


class PrometheusServer:
    """``prometheus`` on 127.0.0.1 (a free port), its storage in a temporary folder; ``stop()`` ends it."""

    def __init__(self, binary: str, config: Path, workdir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = workdir / "prometheus.log"
        self.args = [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--storage.tsdb.retention.time=1h",
            "--log.level=warn",
        ]
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> PrometheusServer:
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen(self.args, stdout=out, stderr=subprocess.STDOUT)
        return self

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""

    def ready(self) -> bool:
        """True once /-/ready answers 200 (storage open, rules loaded)."""
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as response:
                return response.status == 200
        except urllib.error.HTTPError:
            return False

    def get(self, path: str, **params: str) -> Any:
        """GET an API path; the decoded JSON answer (errors too)."""
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        try:
            with urllib.request.urlopen(f"{self.url}{path}{query}", timeout=5) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return json.loads(exc.read() or b"{}")

    def query(self, expr: str) -> Any:
        return self.get("/api/v1/query", query=expr)

    def wait_for(self, what: str, check: Callable[[], Any], timeout_s: float) -> Any:
        """Poll ``check`` until it returns something true; fail after ``timeout_s`` with the log."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.process is not None and self.process.poll() is None, (
                f"prometheus exited:\n{self.output()}"
            )
            try:
                found = check()
            except OSError:
                found = None
            if found:
                return found
            time.sleep(0.25)
        raise AssertionError(f"{what}: not within {timeout_s} s\n{self.output()}")
