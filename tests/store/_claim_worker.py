"""A scoring worker for test_concurrency.py, run as a separate process.

Usage: python _claim_worker.py URL WORKER_ID READY_FILE GO_FILE OUT_JSON

Signals readiness by creating READY_FILE, waits for GO_FILE, then claims batches and records a score for
every file until the queue is empty, and writes the claimed file ids and any refused writes to OUT_JSON.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from monitor.qc.labels import STRUCTURES
from monitor.qc.levels import FlagLevel
from monitor.qc.records import StructureScore, VolumeScore
from monitor.store import (
    ARTIFACT_PGT,
    FileStateError,
    claim_batch,
    make_engine,
    make_session_factory,
    record_scores,
    register_model,
)


def main(url: str, worker_id: str, ready: Path, go: Path, out: Path) -> None:
    engine = make_engine(url)
    sessions = make_session_factory(engine)
    score = VolumeScore(
        structures=tuple(
            StructureScore(
                structure=s,
                pdsc=0.9,
                phd_mm=4.0,
                flag=FlagLevel.OK,
                reasons=(),
                mask_voxels=100,
                pgt_voxels=110,
                mask_volume_ml=1.5,
            )
            for s in STRUCTURES
        ),
        flag=FlagLevel.OK,
        shape=(10, 64, 64),
        spacing_mm=(10.0, 1.5, 1.5),
        slices_scored=8,
    )
    claimed: list[int] = []
    refused: list[int] = []
    batches = 0
    with sessions() as session:
        model_id = register_model(session, "concurrency-test", {"worker": "any"})
        ready.touch()
        deadline = time.monotonic() + 60
        while not go.exists():
            if time.monotonic() > deadline:
                raise SystemExit("no go signal within 60 s")
            time.sleep(0.01)
        while batch := claim_batch(session, worker_id=worker_id, limit=10, lease_s=300):
            batches += 1
            for item in batch:
                claimed.append(item.file_id)
                try:
                    record_scores(
                        session,
                        item.file_id,
                        score,
                        model_id=model_id,
                        artifacts={ARTIFACT_PGT: f"/a/{item.file_id}"},
                    )
                except FileStateError:
                    refused.append(item.file_id)
    engine.dispose()
    out.write_text(json.dumps({"claimed": claimed, "refused": refused, "batches": batches}))


if __name__ == "__main__":
    url, worker_id, ready, go, out = sys.argv[1:6]
    main(url, worker_id, Path(ready), Path(go), Path(out))
