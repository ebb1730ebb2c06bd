"""Acceptance: the real daemon (a subprocess, as in tests/daemon) scraped over HTTP, and a real Prometheus
server scraping it with the alert rules.

One daemon on SQLite serves the module. ``test_metrics_equal_database_counts`` feeds it good, poor,
erroneous, invalid and duplicate masks and checks that every counter, every histogram bucket and the
queue gauges equal what the database holds. ``test_prometheus_fires_flag_rate_alert`` starts
``prometheus`` on loopback with a 1 s scrape and evaluation interval and a copy of the rules with short
windows and ``for:``, feeds a burst of masks with the LV missing, and waits for the flag-rate and burst
alerts to fire in ``/api/v1/alerts``; then it runs every Grafana query against that server.
"""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml

from monitor.io.files import file_sha256
from monitor.telemetry import PDSC_BUCKETS, PHD_BUCKETS_MM
from tests.daemon._harness import (
    DaemonProcess,
    invalid_bytes,
    mask_bytes,
    wait_for_end_state,
    write_renamed,
)
from tests.telemetry._helpers import PrometheusServer, lv_missing_bytes, samples
from tests.telemetry.conftest import DEPLOY
from tests.telemetry.test_grafana import dashboard_queries

pytestmark = pytest.mark.slow

Key = tuple[str, frozenset[tuple[str, str]]]


@dataclass
class Live:
    daemon: DaemonProcess
    incoming: Path
    url: str
    checkpoint: Path

    def rows(self) -> int:
        return _scalar(self.url, "SELECT count(*) FROM mask_files")


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path, checkpoint: Path) -> Iterator[Live]:
    root = tmp_path_factory.mktemp("live")
    (root / "incoming").mkdir()
    shutil.copyfile(sqlite_template, root / "monitor.db")
    url = f"sqlite:///{root / 'monitor.db'}"
    daemon = DaemonProcess(
        [root / "incoming"],
        url=url,
        artifacts=root / "artifacts",
        checkpoint=checkpoint,
        log=root / "daemon.log",
    ).start()
    try:
        daemon.wait_ready()
        yield Live(daemon, root / "incoming", url, checkpoint)
    finally:
        code = daemon.stop()
    assert code == 0, daemon.output()


def _query(url: str, sql: str) -> list[tuple]:
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    try:
        with engine.connect() as connection:
            return [tuple(row) for row in connection.execute(sa.text(sql)).all()]
    finally:
        engine.dispose()


def _scalar(url: str, sql: str) -> int:
    return _query(url, sql)[0][0]


_FROM = " FROM mask_files f JOIN segmenters s ON s.id = f.segmenter_id"
_SCORES = " FROM structure_scores x JOIN mask_files f ON f.id = x.file_id JOIN segmenters s ON s.id = f.segmenter_id"


def _labels(**values: object) -> frozenset[tuple[str, str]]:
    return frozenset((k, str(v)) for k, v in values.items())


def _expected_from_database(url: str) -> dict[Key, float]:
    """The samples /metrics must show, computed from the rows (zero-valued series left out)."""
    expected: dict[Key, float] = {}
    seg = "s.name, s.version"
    for name, version, n in _query(url, f"SELECT {seg}, count(*){_FROM} GROUP BY {seg}"):
        expected["cmr_monitor_files_received_total", _labels(segmenter=name, segmenter_version=version)] = n
    for name, version, flag, n in _query(
        url, f"SELECT {seg}, f.flag, count(*){_FROM} WHERE f.status = 'scored' GROUP BY {seg}, f.flag"
    ):
        key = _labels(segmenter=name, segmenter_version=version, flag=flag)
        expected["cmr_monitor_files_scored_total", key] = n
    for name, version, reason, n in _query(
        url,
        f"SELECT {seg}, f.rejection_reason, count(*){_FROM} WHERE f.status = 'rejected' "
        f"GROUP BY {seg}, f.rejection_reason",
    ):
        key = _labels(segmenter=name, segmenter_version=version, reason=reason)
        expected["cmr_monitor_files_rejected_total", key] = n
    for name, version, structure, level, n in _query(
        url, f"SELECT {seg}, x.structure, x.flag, count(*){_SCORES} GROUP BY {seg}, x.structure, x.flag"
    ):
        key = _labels(segmenter=name, segmenter_version=version, structure=structure, level=level)
        expected["cmr_monitor_flags_total", key] = n
    for column, metric, buckets in (
        ("pdsc", "cmr_monitor_pdsc_ratio", PDSC_BUCKETS),
        ("phd_mm", "cmr_monitor_phd_millimeters", PHD_BUCKETS_MM),
    ):
        bucket_sql = ", ".join(f"sum(CASE WHEN x.{column} <= {le!r} THEN 1 ELSE 0 END)" for le in buckets)
        for name, version, structure, count, total, *cumulative in _query(
            url,
            f"SELECT {seg}, x.structure, count(x.{column}), sum(x.{column}), {bucket_sql}{_SCORES} "
            f"GROUP BY {seg}, x.structure",
        ):
            if not count:
                continue
            base = {"segmenter": name, "segmenter_version": version, "structure": structure}
            expected[f"{metric}_count", _labels(**base)] = count
            expected[f"{metric}_sum", _labels(**base)] = total
            for le, n in zip((*buckets, float("inf")), (*cumulative, count), strict=True):
                if n:
                    expected[f"{metric}_bucket", _labels(**base, le=_le(le))] = n
    n_scored = _scalar(url, "SELECT count(*) FROM mask_files WHERE status = 'scored'")
    claims = _scalar(url, "SELECT coalesce(sum(attempts), 0) FROM mask_files")
    expected["cmr_monitor_scoring_latency_seconds_count", frozenset()] = n_scored
    expected["cmr_monitor_queue_wait_seconds_count", frozenset()] = claims
    for status in ("pending", "scoring"):
        n = _scalar(url, f"SELECT count(*) FROM mask_files WHERE status = '{status}'")
        if n:
            expected["cmr_monitor_queue_files", _labels(status=status)] = n
    return expected


def _le(bound: float) -> str:
    """A bucket bound as prometheus_client writes it."""
    return "+Inf" if bound == float("inf") else repr(float(bound))


_COMPARED = re.compile(
    r"cmr_monitor_(files_(received|scored|rejected)_total|flags_total|(pdsc_ratio|phd_millimeters)_(count|sum|bucket)"
    r"|scoring_latency_seconds_count|queue_wait_seconds_count|queue_files)$"
)


def _exported(body: str) -> dict[Key, float]:
    return {key: value for key, value in samples(body).items() if _COMPARED.match(key[0]) and value != 0}


def _compare(live: Live) -> tuple[dict[Key, float], dict[Key, float]]:
    """(expected, exported), once both agree or after 15 s (the queue gauges are cached for 1 s)."""
    deadline = time.monotonic() + 15
    while True:
        expected = _expected_from_database(live.url)
        exported = _exported(live.daemon.get("/metrics")[1])
        same = expected.keys() == exported.keys() and all(
            exported[k] == pytest.approx(v, rel=1e-9, abs=1e-9) for k, v in expected.items()
        )
        if same or time.monotonic() > deadline:
            return expected, exported
        time.sleep(0.3)


def test_metrics_equal_database_counts(live: Live) -> None:
    folder = live.incoming
    expected_rows = live.rows()
    for i, quality in enumerate(["good", "good", "fair", "poor", "good", "poor", "fair", "good"]):
        segmenter = ("unet", "1.0") if i % 2 else ("nnunet", "2")
        write_renamed(folder / segmenter[0] / segmenter[1] / f"case{i:02d}_ED.nii.gz", mask_bytes(500 + i, quality=quality))  # fmt: skip
    for i in range(3):
        write_renamed(folder / "unet" / "1.0" / f"nolv{i}_ES.nii.gz", lv_missing_bytes(600 + i))
    for kind in ("float", "outside", "flat2d"):
        write_renamed(folder / "unet" / "1.0" / f"broken_{kind}.nii.gz", invalid_bytes(kind))
    time.sleep(1.0)
    write_renamed(folder / "nnunet" / "2" / "case00_ED.nii.gz", mask_bytes(500, quality="good"))  # duplicate
    wait_for_end_state(live.url, expected_rows + 14, timeout_s=90, alive=lambda: live.daemon.alive)

    expected, exported = _compare(live)
    missing = {k: v for k, v in expected.items() if k not in exported}
    extra = {k: v for k, v in exported.items() if k not in expected}
    differ = {k: (v, exported[k]) for k, v in expected.items() if k in exported and exported[k] != pytest.approx(v)}  # fmt: skip
    assert not (missing or extra or differ), f"missing {missing}\nextra {extra}\ndiffer {differ}"
    names = {name for name, _ in expected}
    assert {"cmr_monitor_flags_total", "cmr_monitor_pdsc_ratio_bucket", "cmr_monitor_files_rejected_total"} <= names  # fmt: skip

    # gauges from the database: the last score, nothing pending; the model in use
    body = samples(live.daemon.get("/metrics")[1])
    last = datetime.fromisoformat(_query(live.url, "SELECT max(scored_at) FROM mask_files")[0][0])
    assert body["cmr_monitor_last_scored_timestamp_seconds", frozenset()] == pytest.approx(
        last.replace(tzinfo=UTC).timestamp(), abs=1e-3
    )  # SQLite keeps naive UTC text
    assert ("cmr_monitor_queue_oldest_pending_timestamp_seconds", frozenset()) not in body
    assert body["cmr_monitor_database_up", frozenset()] == 1
    assert body["cmr_monitor_ready", frozenset()] == 1
    (model_id,) = [row[0] for row in _query(live.url, "SELECT id FROM monitor_models")]
    (info,) = [dict(labels) for name, labels in body if name == "cmr_monitor_model_info"]
    assert info["checkpoint_sha256"] == file_sha256(live.checkpoint)
    assert info["model_id"] == str(model_id) and info["device"] == "cpu" and info["precision"] == "fp32"


def _test_rules(workdir: Path) -> Path:
    """A copy of the alert rules with windows of 60 s and ``for:`` of 1 s (thresholds unchanged)."""
    rules = yaml.safe_load((DEPLOY / "prometheus" / "rules" / "cmr-monitor.rules.yml").read_text())
    for group in rules["groups"]:
        group["interval"] = "1s"
        for rule in group["rules"]:
            rule["expr"] = re.sub(r"\[\d+[smhd]\]", "[60s]", rule["expr"])
            if "for" in rule:
                rule["for"] = "1s"
    path = workdir / "rules" / "test.rules.yml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(rules, sort_keys=False))
    return path


def _firing(server: PrometheusServer, alertname: str, **labels: str) -> list[dict]:
    answer = server.get("/api/v1/alerts")
    return [
        alert
        for alert in answer.get("data", {}).get("alerts", [])
        if alert["labels"].get("alertname") == alertname
        and alert["state"] == "firing"
        and all(alert["labels"].get(k) == v for k, v in labels.items())
    ]


def test_prometheus_fires_flag_rate_alert(live: Live, prometheus_binary: str, tmp_path: Path) -> None:
    rules = _test_rules(tmp_path)
    config = tmp_path / "prometheus.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
                "rule_files": [str(rules)],
                "scrape_configs": [
                    {
                        "job_name": "cmr-monitor",
                        "static_configs": [{"targets": [f"127.0.0.1:{live.daemon.port}"]}],
                    }
                ],
            }
        )
    )
    server = PrometheusServer(prometheus_binary, config, tmp_path).start()
    try:
        server.wait_for("prometheus ready", server.ready, 30)
        up = 'up{job="cmr-monitor"} == 1'
        server.wait_for("daemon scraped", lambda: server.query(up)["data"]["result"], 30)
        # A counter series is born at its first scraped value, which increase() cannot see. One file
        # first, scraped, so that the burst after it is counted whole however the daemon batches it.
        bad = live.incoming / "bad" / "9.9"
        expected_rows = live.rows() + 1
        write_renamed(bad / "primer_ED.nii.gz", lv_missing_bytes(699))
        wait_for_end_state(live.url, expected_rows, timeout_s=60, alive=lambda: live.daemon.alive)
        series = 'cmr_monitor_flags_total{segmenter="bad",segmenter_version="9.9",structure="LV"}'
        server.wait_for("bad segmenter scraped", lambda: server.query(series)["data"]["result"], 30)
        expected_rows += 30
        for i in range(30):
            write_renamed(bad / f"burst{i:02d}_ED.nii.gz", lv_missing_bytes(700 + i))
        wait_for_end_state(live.url, expected_rows, timeout_s=90, alive=lambda: live.daemon.alive)
        flag_rate = server.wait_for(
            "CMRMonitorFlagRateHigh firing",
            lambda: _firing(
                server, "CMRMonitorFlagRateHigh", segmenter="bad", segmenter_version="9.9", structure="LV", severity="critical"
            ),
            45,
        )  # fmt: skip
        assert float(flag_rate[0]["value"]) == pytest.approx(1.0)
        assert _firing(server, "CMRMonitorFlagRateHigh", segmenter="bad", structure="LV", severity="warning")
        assert _firing(server, "CMRMonitorErroneousBurst", segmenter="bad", segmenter_version="9.9")
        assert not _firing(server, "CMRMonitorDown")
        assert not _firing(server, "CMRMonitorScoringStalled")

        # every Grafana query is valid PromQL on real data; the quality panels have data
        for title, expr in dashboard_queries():
            if expr.startswith("label_values("):
                continue
            concrete = (
                expr.replace("$__rate_interval", "30s").replace("$window", "1m").replace("$segmenter", ".*")
            ).replace("$version", ".*")
            answer = server.query(concrete)
            assert answer.get("status") == "success", (title, concrete, answer)
            if title.startswith(("Flag rate", "pDSC quantiles", "Erroneous files", "Daemons up")):
                assert answer["data"]["result"], (title, concrete)
    finally:
        server.stop()
