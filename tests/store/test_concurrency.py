"""Two processes claim from one queue: no file is handed out twice, every file ends scored once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

import monitor
from monitor.store import enqueue_file, export_frame, status_counts

REPO_ROOT = Path(monitor.__file__).resolve().parent.parent
WORKER = Path(__file__).with_name("_claim_worker.py")
N_FILES = 1000


@pytest.mark.slow
def test_two_processes_score_every_file_exactly_once(db_url: str, session: Session, tmp_path: Path) -> None:
    t0 = datetime(2026, 3, 2, tzinfo=UTC)
    for i in range(N_FILES):
        enqueue_file(
            session,
            path=f"/watch/p{i:04d}_ES.nii.gz",
            content_hash=f"{i:064x}",
            case_key=f"p{i:04d}",
            phase="ES",
            segmenter_name="unet",
            segmenter_version="1.0",
            received_at=t0 + timedelta(seconds=i),
        )
    go = tmp_path / "go"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
    }
    workers = []
    for name in ("a", "b"):
        args = [db_url, f"worker-{name}", tmp_path / f"ready-{name}", go, tmp_path / f"out-{name}.json"]
        workers.append(subprocess.Popen([sys.executable, str(WORKER), *map(str, args)], env=env))
    try:
        deadline = time.monotonic() + 60
        while not all((tmp_path / f"ready-{name}").exists() for name in ("a", "b")):
            assert all(w.poll() is None for w in workers), "a worker died before it was ready"
            assert time.monotonic() < deadline, "workers not ready within 60 s"
            time.sleep(0.02)
        started = time.monotonic()
        go.touch()
        for w in workers:
            assert w.wait(timeout=120) == 0
        elapsed_s = time.monotonic() - started
    finally:
        for w in workers:
            if w.poll() is None:
                w.kill()

    results = [json.loads((tmp_path / f"out-{name}.json").read_text()) for name in ("a", "b")]
    claimed_a, claimed_b = (set(r["claimed"]) for r in results)
    assert len(claimed_a) == len(results[0]["claimed"])  # no file twice to the same worker
    assert claimed_a.isdisjoint(claimed_b)  # ... nor to both
    assert len(claimed_a | claimed_b) == N_FILES
    assert claimed_a and claimed_b, "both workers must have taken part"
    assert results[0]["refused"] == [] and results[1]["refused"] == []

    counts = status_counts(session)
    assert counts.by_status == {"pending": 0, "scoring": 0, "scored": N_FILES, "rejected": 0}
    frame = export_frame(session)
    per_file = Counter(frame["file_id"])
    assert len(per_file) == N_FILES and set(per_file.values()) == {3}
    print(f"\n2 workers scored {N_FILES} files in {elapsed_s:.1f} s: {len(claimed_a)} + {len(claimed_b)}")
