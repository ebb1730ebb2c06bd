"""Hostile and broken inputs fed to one real daemon (a subprocess on SQLite) with good masks in
between: each ends ``rejected`` with a reason naming its problem, or is ignored by rule; the good
masks are all scored; the daemon stays healthy, under 1 GB of peak resident memory, and names no
patient in its INFO logs or its metrics.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from tests.daemon._harness import (
    DaemonProcess,
    Row,
    invalid_bytes,
    mask_bytes,
    read_rows,
    wait_for_end_state,
    write_direct,
    write_renamed,
)
from tests.hardening.conftest import MEMORY_LIMIT_BYTES, fresh_sqlite, peak_rss_bytes, start_daemon
from tests.hardening.hostile import HOSTILE

pytestmark = pytest.mark.timeout(600)

#: Tiny files written at once in the default run; the slow test writes 10,000.
N_TINY = int(os.environ.get("CMR_MONITOR_TEST_TINY_FILES", "1000"))
_AS_ROOT = os.geteuid() == 0


@dataclass
class Fed:
    """What was written into the watched folder and what must come of it."""

    daemon: DaemonProcess
    url: str
    folder: Path
    rejected: dict[str, frozenset[str]] = field(default_factory=dict)  #: path -> allowed reasons
    scored: set[str] = field(default_factory=set)  #: paths that must be scored
    absent: set[str] = field(default_factory=set)  #: paths that must have no row ...
    absent_or_missing: set[str] = field(default_factory=set)  #: ... or may be rejected ``missing``
    stems: set[str] = field(default_factory=set)  #: case keys and file names that must not leak
    rows: dict[str, Row] = field(default_factory=dict)
    feed_s: float = 0.0


def _good(fed: Fed, target: Path, seed: int) -> None:
    write_renamed(target, mask_bytes(seed))
    fed.scored.add(str(target))
    fed.stems.add(target.name.removesuffix(".nii.gz"))


@pytest.fixture(scope="module")
def fed(module_dir: Path, sqlite_template: Path, checkpoint: Path) -> Iterator[Fed]:
    """One daemon, every hostile input once with a good mask after each; waits for the end state."""
    url = fresh_sqlite(sqlite_template, module_dir / "db")
    daemon = start_daemon(module_dir, url, checkpoint)
    incoming = module_dir / "incoming"
    there = incoming / "unet" / "1.0"
    there.mkdir(parents=True)
    fed = Fed(daemon=daemon, url=url, folder=module_dir)
    started = time.monotonic()
    seed = 100
    for kind, hostile in HOSTILE.items():
        target = there / f"hostilecase_{kind}{hostile.suffix}"
        write_direct(target, hostile.build())
        fed.stems.add(target.name.split(".")[0])
        if hostile.reasons:
            fed.rejected[str(target)] = hostile.reasons
        else:
            fed.scored.add(str(target))
        seed += 1
        _good(fed, there / f"goodcase{seed:03d}_ED.nii.gz", seed)
    # A symbolic link to a valid mask outside the watched folder, one to /dev/zero, a FIFO.
    outside = module_dir / "outside" / "secretcase_ED.nii.gz"
    write_direct(outside, mask_bytes(900))
    specials = {
        "hostilecase_link_outside.nii.gz": ("link", outside, {"outside_folder"}),
        "hostilecase_link_devzero.nii.gz": ("link", Path("/dev/zero"), {"not_a_file"}),
        "hostilecase_fifo.nii.gz": ("fifo", None, {"not_a_file"}),
    }
    for name, (kind, target_of, reasons) in specials.items():
        link = there / name
        if kind == "link":
            link.symlink_to(target_of)
        else:
            os.mkfifo(link)
        fed.rejected[str(link)] = frozenset(reasons)
        fed.stems.add(name.split(".")[0])
        seed += 1
        _good(fed, there / f"goodcase{seed:03d}_ES.nii.gz", seed)
    # A link to a mask inside the watched folder (in an excluded hidden folder) is scored as usual.
    hidden = incoming / ".staging" / "insidecase_ED.nii.gz"
    write_direct(hidden, mask_bytes(901))
    (there / "insidecase_ED.nii.gz").symlink_to(hidden)
    fed.scored.add(str(there / "insidecase_ED.nii.gz"))
    # A directory named like a mask, with an invalid file in it: the folder is no mask (ignored),
    # the file in it is one like any other (deeper folders do not matter for naming).
    folder_mask = there / "hostilecase_folder.nii.gz"
    folder_mask.mkdir()
    fed.absent.add(str(folder_mask))
    inner = folder_mask / "hostilecase_inner.nii.gz"
    write_direct(inner, invalid_bytes("flat2d"))
    fed.rejected[str(inner)] = frozenset({"bad_ndim"})
    # A file deleted right after it was written (between its event and its read).
    for i in range(5):
        doomed = there / f"hostilecase_deleted{i}.nii.gz"
        write_direct(doomed, mask_bytes(950 + i))
        time.sleep(0.02 * i)
        doomed.unlink()
        fed.absent_or_missing.add(str(doomed))
    # An unreadable file: root reads through chmod 000, so this only means something as non-root.
    if not _AS_ROOT:
        locked = there / "hostilecase_unreadable.nii.gz"
        write_direct(locked, mask_bytes(960))
        locked.chmod(0)
        fed.rejected[str(locked)] = frozenset({"unreadable"})
    seed += 1
    _good(fed, there / f"goodcase{seed:03d}_ED.nii.gz", seed)
    fed.feed_s = time.monotonic() - started
    expected = len(fed.rejected) + len(fed.scored)
    rows = wait_for_end_state(url, expected, alive=lambda: daemon.alive)
    time.sleep(1.0)  # let late events (the deleted files) settle, then read again
    rows = wait_for_end_state(url, expected, alive=lambda: daemon.alive)
    fed.rows = {r.path: r for r in rows}
    yield fed
    code = daemon.stop()
    for path in (there / "hostilecase_fifo.nii.gz", *(p for p in there.glob("*") if p.is_symlink())):
        path.unlink(missing_ok=True)
    assert code == 0, daemon.output()


def test_each_hostile_input_is_rejected_with_its_reason(fed: Fed) -> None:
    wrong = {
        path: (fed.rows[path].status, fed.rows[path].reason, sorted(reasons))
        for path, reasons in fed.rejected.items()
        if path not in fed.rows or fed.rows[path].status != "rejected" or fed.rows[path].reason not in reasons
    }
    missing = [p for p in fed.rejected if p not in fed.rows]
    assert not missing, missing
    assert not wrong, wrong


def test_good_masks_in_between_are_all_scored(fed: Fed) -> None:
    not_scored = {
        p: fed.rows.get(p) for p in fed.scored if getattr(fed.rows.get(p), "status", None) != "scored"
    }
    assert not not_scored, not_scored
    assert all(fed.rows[p].scores == 3 and fed.rows[p].artifacts == 2 for p in fed.scored)


def test_ignored_by_rule_and_deleted_files_leave_no_pending_row(fed: Fed) -> None:
    for path in fed.absent:
        assert path not in fed.rows, fed.rows[path]
    for path in fed.absent_or_missing:
        row = fed.rows.get(path)
        assert row is None or (row.status, row.reason) == ("rejected", "missing"), row
    known = fed.rejected.keys() | fed.scored | fed.absent_or_missing
    assert set(fed.rows) <= known, sorted(set(fed.rows) - known)


def test_daemon_stays_healthy_and_under_the_memory_bound(fed: Fed) -> None:
    assert fed.daemon.alive and fed.daemon.process is not None
    assert fed.daemon.get("/healthz")[0] == 200
    assert fed.daemon.get("/readyz")[0] == 200
    peak = peak_rss_bytes(fed.daemon.process.pid)
    assert peak < MEMORY_LIMIT_BYTES, f"peak RSS {peak / 1024**2:.0f} MiB"


def test_no_patient_identifiers_in_info_logs_or_metrics(fed: Fed) -> None:
    """The daemon runs at INFO (no ``-v``): no case key, file name or watched path in any log line
    or in ``/metrics``."""
    lines = [json.loads(line) for line in fed.daemon.log.read_text().splitlines() if line.startswith("{")]
    assert lines and all(line["level"] != "DEBUG" for line in lines)
    assert any(line.get("action") == "rejected" for line in lines)
    text = fed.daemon.log.read_text()
    _, metrics = fed.daemon.get("/metrics")
    secrets = {*fed.stems, "secretcase", "insidecase", "goodcase", str(fed.folder / "incoming" / "unet")}
    leaks = {s: where for s in secrets for where, body in (("log", text), ("metrics", metrics)) if s in body}
    assert not leaks, leaks


def _tiny_flood(fed: Fed, n_files: int) -> tuple[float, int]:
    """``n_files`` tiny files written at once (1 in 50 a valid mask, the rest 2D images); returns
    (seconds to the end state, peak RSS)."""
    bulk = fed.folder / "incoming" / f"bulk{n_files}" / "1.0"
    bulk.mkdir(parents=True)
    tiny = invalid_bytes("flat2d")
    valid = {i: mask_bytes(2000 + i) for i in range(0, n_files, 50)}
    before = len(read_rows(fed.url))
    started = time.monotonic()
    for i in range(n_files):
        (bulk / f"tiny{i:05d}.nii.gz").write_bytes(valid.get(i, tiny))
    rows = wait_for_end_state(fed.url, before + n_files, timeout_s=1200, alive=lambda: fed.daemon.alive)
    elapsed = time.monotonic() - started
    mine = [r for r in rows if r.path.startswith(str(bulk))]
    assert len(mine) == n_files
    assert sum(r.status == "scored" for r in mine) == len(valid)
    assert {r.reason for r in mine if r.status == "rejected"} == {"bad_ndim"}
    assert fed.daemon.process is not None
    return elapsed, peak_rss_bytes(fed.daemon.process.pid)


def test_a_thousand_tiny_files_at_once(fed: Fed) -> None:
    elapsed, peak = _tiny_flood(fed, N_TINY)
    print(f"{N_TINY} tiny files: end state in {elapsed:.1f} s, peak RSS {peak / 1024**2:.0f} MiB")
    assert peak < MEMORY_LIMIT_BYTES
    assert fed.daemon.get("/healthz")[0] == 200


@pytest.mark.slow
def test_ten_thousand_tiny_files_at_once(fed: Fed) -> None:
    elapsed, peak = _tiny_flood(fed, 10_000)
    print(f"10000 tiny files: end state in {elapsed:.1f} s, peak RSS {peak / 1024**2:.0f} MiB")
    assert peak < MEMORY_LIMIT_BYTES


def test_loader_reads_no_further_than_the_header_needs(fed: Fed) -> None:
    """The bomb with 1 GB of zeros after a valid mask was scored without reading them: the daemon's
    peak memory is far below the decompressed size (checked above), and the file is on record."""
    row = fed.rows[str(fed.folder / "incoming" / "unet" / "1.0" / "hostilecase_gzip_bomb_tail.nii.gz")]
    assert row.status == "scored"
    assert np.isfinite(fed.feed_s)
