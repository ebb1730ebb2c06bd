"""Test harness: the daemon as a subprocess, a simulated segmenter that writes masks the hard ways,
a TCP proxy in front of PostgreSQL, and the end-state checks.

The simulated segmenter writes small phantoms (4 slices, 96 x 96) so that the CPU scores each in a
fraction of a second: some renamed into place from a temporary name, some written slowly in chunks,
some written at once; then duplicates (the same bytes delivered again to the same path) and invalid
files (truncated gzip, a 2D image, float labels, labels outside the map, an empty file).
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np
import sqlalchemy as sa

from monitor.sim import SEGMENTERS, make_patient
from monitor.telemetry.server import free_port

__all__ = [
    "INVALID_REASONS",
    "DaemonProcess",
    "Stream",
    "TcpProxy",
    "assert_end_state",
    "free_pid",
    "free_port",
    "mask_bytes",
    "read_rows",
    "wait_for_end_state",
]

_REPO = Path(__file__).resolve().parents[2]
#: Expected rejection reasons of the invalid files.
INVALID_REASONS: dict[str, frozenset[str]] = {
    "truncated": frozenset({"corrupt", "truncated"}),
    "flat2d": frozenset({"bad_ndim"}),
    "float": frozenset({"float_labels"}),
    "outside": frozenset({"labels_outside_map"}),
    "empty": frozenset({"empty_file"}),
}
#: Daemon options that make the tests quick.
FAST_OPTIONS: tuple[str, ...] = (
    "--device",
    "cpu",
    "--threads",
    "1",
    "--stable-s",
    "0.4",
    "--poll-interval-s",
    "0.1",
    "--incomplete-timeout-s",
    "2",
    "--rescan-interval-s",
    "3",
    "--lease-s",
    "20",
    "--shutdown-timeout-s",
    "10",
    "--log-format",
    "json",
)


def free_pid() -> int:
    """A process id that no process has now (a dead writer's, for the temporary files of artifacts)."""
    pid = 4_000_000
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return pid
        except PermissionError:
            pass
        pid -= 1


def _to_gz(image: nib.Nifti1Image) -> bytes:
    raw = io.BytesIO()
    file_map = image.make_file_map({"image": raw, "header": raw})
    image.to_file_map(file_map)
    return gzip.compress(raw.getvalue(), compresslevel=1)


def mask_bytes(seed: int, *, quality: str = "good") -> bytes:
    """A small valid mask (ACDC labels, 4 slices of 96 x 96) as .nii.gz bytes, unique per seed."""
    ed, _ = make_patient(np.random.default_rng(seed), n_slices=4, shape_yx=(96, 96))
    labels, _ = SEGMENTERS[quality](ed.labels, np.random.default_rng(seed + 1), ed.spacing_mm)
    return _to_gz(nib.Nifti1Image(np.ascontiguousarray(labels.transpose(2, 1, 0)), ed.affine))


def invalid_bytes(kind: str) -> bytes:
    """The bytes of one kind of invalid file (keys of ``INVALID_REASONS``)."""
    affine = np.diag([1.5, 1.5, 8.0, 1.0])
    if kind == "truncated":
        data = mask_bytes(10_000)
        return data[: len(data) // 2]
    if kind == "flat2d":
        return _to_gz(nib.Nifti1Image(np.zeros((96, 96), np.uint8), affine))
    if kind == "float":
        volume = np.zeros((96, 96, 4), np.float32)
        volume[30:60, 30:60, :] = 1.5
        return _to_gz(nib.Nifti1Image(volume, affine))
    if kind == "outside":
        volume = np.zeros((96, 96, 4), np.uint8)
        volume[30:60, 30:60, :] = 7
        return _to_gz(nib.Nifti1Image(volume, affine))
    if kind == "empty":
        return b""
    raise ValueError(f"unknown invalid kind {kind!r}")


def write_renamed(path: Path, data: bytes, *, suffix: str = ".tmp") -> None:
    """Write under a temporary name next to the target, then rename into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + suffix)
    temporary.write_bytes(data)
    os.replace(temporary, path)


def write_chunks(
    path: Path, data: bytes, *, chunks: int = 4, pause_s: float = 0.25, reopen: bool = False
) -> None:
    """Write slowly: ``chunks`` pieces ``pause_s`` apart, in one open file or reopening it each time."""
    path.parent.mkdir(parents=True, exist_ok=True)
    size = len(data) // chunks + 1
    pieces = [data[i : i + size] for i in range(0, len(data), size)]
    if reopen:
        for i, piece in enumerate(pieces):
            with open(path, "wb" if i == 0 else "ab") as fh:
                fh.write(piece)
            time.sleep(pause_s)
        return
    with open(path, "wb") as fh:
        for piece in pieces:
            fh.write(piece)
            fh.flush()
            time.sleep(pause_s)


def write_direct(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


@dataclass
class Stream:
    """The simulated segmenter's delivery of masks into ``folder`` and what must come of it.

    Args:
        folder: the watched folder.
        n_valid: distinct valid masks.
        n_duplicates: of them, delivered a second time with the same bytes.
        seed: random seed of contents, write modes and pauses.
        max_pause_s: the writer pauses up to this long between files.
    """

    folder: Path
    n_valid: int = 60
    n_duplicates: int = 5
    seed: int = 0
    max_pause_s: float = 0.08
    valid: dict[Path, str] = field(default_factory=dict)  #: path -> sha256 of its bytes
    invalid: dict[Path, frozenset[str]] = field(default_factory=dict)  #: path -> allowed reasons

    def run(self, on_written: Callable[[int], None] | None = None) -> None:
        """Write everything; ``on_written(i)`` is called after the i-th file (0-based)."""
        rng = random.Random(self.seed)
        jobs: list[tuple[Path, bytes, str]] = []
        for i in range(self.n_valid):
            segmenter = ("unet", "1.0") if i % 3 else ("nnunet", "2")
            path = (
                self.folder / segmenter[0] / segmenter[1] / f"patient{i:03d}_{'ED' if i % 2 else 'ES'}.nii.gz"
            )
            data = mask_bytes(self.seed * 1000 + i, quality=rng.choice(["good", "good", "fair", "poor"]))
            self.valid[path] = hashlib.sha256(data).hexdigest()
            mode = ("renamed", "renamed_part", "chunks", "chunks_reopen", "direct")[i % 5]
            jobs.append((path, data, mode))
        for kind, reasons in INVALID_REASONS.items():
            path = self.folder / "unet" / "1.0" / f"broken_{kind}.nii.gz"
            self.invalid[path] = reasons
            jobs.append((path, invalid_bytes(kind), "direct"))
        rng.shuffle(jobs)
        originals = [j for j in jobs if j[0] in self.valid]
        for path, data, _ in rng.sample(originals, self.n_duplicates):
            jobs.append((path, data, "renamed"))  # re-delivery of the same bytes, after the first
        for index, (path, data, mode) in enumerate(jobs):
            if mode == "renamed":
                write_renamed(path, data)
            elif mode == "renamed_part":
                write_renamed(path, data, suffix=".part")
            elif mode == "chunks":
                write_chunks(path, data, pause_s=0.06)
            elif mode == "chunks_reopen":
                write_chunks(path, data, pause_s=0.06, reopen=True)
            else:
                write_direct(path, data)
            if on_written is not None:
                on_written(index)
            time.sleep(rng.uniform(0, self.max_pause_s))

    @property
    def expected_files(self) -> int:
        """Rows the database must end with."""
        return len(self.valid) + len(self.invalid)


@dataclass(frozen=True, slots=True)
class Row:
    path: str
    content_hash: str
    status: str
    reason: str | None
    scores: int
    artifacts: int
    attempts: int


def read_rows(url: str) -> list[Row]:
    """Every file row with its number of structure scores and artifacts."""
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    try:
        with engine.connect() as connection:
            result = connection.execute(
                sa.text(
                    "SELECT f.path, f.content_hash, f.status, f.rejection_reason, f.attempts,"
                    " (SELECT count(*) FROM structure_scores s WHERE s.file_id = f.id),"
                    " (SELECT count(*) FROM artifacts a WHERE a.file_id = f.id)"
                    " FROM mask_files f ORDER BY f.id"
                )
            ).all()
    finally:
        engine.dispose()
    return [
        Row(
            path=r[0], content_hash=r[1], status=r[2], reason=r[3], attempts=r[4], scores=r[5], artifacts=r[6]
        )
        for r in result
    ]


def wait_for_end_state(
    url: str, expected: int, *, timeout_s: float = 240.0, alive: Callable[[], bool] | None = None
) -> list[Row]:
    """Poll until ``expected`` rows exist and none is pending or scoring; return the rows."""
    deadline = time.monotonic() + timeout_s
    rows: list[Row] = []
    while time.monotonic() < deadline:
        try:
            rows = read_rows(url)
        except sa.exc.OperationalError:
            rows = []
        if len(rows) >= expected and all(r.status in ("scored", "rejected") for r in rows):
            return rows
        if alive is not None and not alive():
            break
        time.sleep(0.25)
    counts = {s: sum(r.status == s for r in rows) for s in ("pending", "scoring", "scored", "rejected")}
    raise AssertionError(f"no end state after {timeout_s} s: {len(rows)}/{expected} rows, {counts}")


def assert_end_state(rows: list[Row], stream: Stream) -> None:
    """Every valid mask scored exactly once (3 structure scores, 2 artifacts), every invalid one
    rejected with a reason naming its problem, and nothing else."""
    by_path: dict[str, list[Row]] = {}
    for row in rows:
        by_path.setdefault(row.path, []).append(row)
    expected_paths = {str(p) for p in (*stream.valid, *stream.invalid)}
    assert set(by_path) == expected_paths, (
        f"unexpected {sorted(set(by_path) - expected_paths)}, missing {sorted(expected_paths - set(by_path))}"
    )
    for path, digest in stream.valid.items():
        (row,) = by_path[str(path)]
        assert (row.status, row.content_hash, row.scores, row.artifacts) == ("scored", digest, 3, 2), row
        assert row.reason is None
    for path, reasons in stream.invalid.items():
        (row,) = by_path[str(path)]
        assert row.status == "rejected" and row.reason in reasons, (row, sorted(reasons))


class DaemonProcess:
    """``python -m monitor.cli watch ...`` as a subprocess, its output in a log file."""

    def __init__(
        self,
        folders: list[Path],
        *,
        url: str,
        artifacts: Path,
        checkpoint: Path,
        log: Path,
        extra: tuple[str, ...] = (),
        env: dict[str, str] | None = None,
    ) -> None:
        self.port = free_port()
        self.log = log
        self.env = dict(env or {})  #: CMR_MONITOR_* settings for this daemon (the test's own are dropped)
        self.args = [
            sys.executable,
            "-m",
            "monitor.cli",
            "watch",
            *map(str, folders),
            "--db",
            url,
            "--artifacts",
            str(artifacts),
            "--checkpoint",
            str(checkpoint),
            "--metrics-port",
            str(self.port),
            *FAST_OPTIONS,
            *extra,
        ]
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> DaemonProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CMR_MONITOR_")} | self.env
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen(
                self.args, cwd=_REPO, stdout=out, stderr=subprocess.STDOUT, env=env
            )
        return self

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def get(self, path: str, timeout_s: float = 2.0) -> tuple[int, str]:
        """HTTP GET on the metrics port: (status, body)."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=timeout_s) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def wait_ready(self, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.alive:
                raise AssertionError(f"daemon exited with {self.process.returncode}:\n{self.output()}")  # type: ignore[union-attr]
            try:
                if self.get("/readyz")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"daemon not ready after {timeout_s} s:\n{self.output()}")

    def metric(self, name: str) -> float:
        """Sum of a metric's samples (all label sets)."""
        _, body = self.get("/metrics")
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in body.splitlines()
            if line.startswith(name) and line[len(name) : len(name) + 1] in ("{", " ")
        )

    def signal(self, signum: int) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    def kill(self) -> None:
        """SIGKILL and reap."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self, timeout_s: float = 20.0) -> int:
        """SIGTERM, wait, and return the exit code (SIGKILL if it does not exit)."""
        if self.process is None:
            return 0
        if self.alive:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-6000:] if self.log.exists() else ""


class TcpProxy:
    """A TCP forwarder on a fixed local port; ``stop()`` closes it and cuts every connection, ``start()``
    listens again on the same port.

    ``hold_after(seen, then)``: once the client has sent ``seen`` on a connection, the first later chunk
    from it that contains ``then`` is held back (``held`` is set) until ``release()``: the client waits
    for an answer while its server session sits idle in the middle of a transaction, e.g. a daemon
    frozen between ``UPDATE ... slices_scored ...`` and ``COMMIT``.
    """

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = free_port()
        self._listener: socket.socket | None = None
        self._connections: list[socket.socket] = []
        self._lock = threading.Lock()
        self._hold: tuple[bytes, bytes] | None = None
        self.held = threading.Event()
        self._released = threading.Event()

    def hold_after(self, seen: bytes, then: bytes) -> None:
        """Hold the first client chunk containing ``then`` sent after ``seen`` (once)."""
        self._hold = (seen, then)

    def release(self) -> None:
        """Forward what was held (if the connection still stands) and hold nothing more."""
        self._hold = None
        self._released.set()

    def start(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def stop(self) -> None:
        if self._listener is not None:
            with contextlib.suppress(OSError):  # wakes the accept() blocked in the other thread
                self._listener.shutdown(socket.SHUT_RDWR)
            self._listener.close()
            self._listener = None
        with self._lock:
            for connection in self._connections:
                with contextlib.suppress(OSError):
                    connection.shutdown(socket.SHUT_RDWR)
                connection.close()
            self._connections.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._connections += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, from_client: bool) -> None:
        seen = False
        try:
            while data := source.recv(65536):
                hold = self._hold
                if from_client and hold is not None and not self.held.is_set():
                    seen = seen or hold[0] in data
                    if seen and hold[1] in data:
                        self.held.set()
                        self._released.wait()
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
