"""Checkpoints: only weights and plain metadata are loaded (a pickled object is refused before it can
run), and a daemon started with a checkpoint other than the one that scored the last file says so.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
import torch

from monitor.errors import CheckpointError
from monitor.model import Scorer
from monitor.model.autoencoder import load_checkpoint, save_checkpoint
from tests.daemon._harness import mask_bytes, wait_for_end_state, write_renamed
from tests.hardening.conftest import fresh_sqlite, start_daemon

_MARKER = "CMR_MONITOR_PWNED"


class _Payload:
    """Unpickling this runs ``os.system``: the classic pickled-checkpoint attack."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return os.system, (f"touch {self.marker}",)


def _evil_checkpoint(path: Path, marker: Path, good: Path) -> Path:
    """The good checkpoint's payload with an object in it that runs a command when unpickled."""
    payload = torch.load(good, weights_only=True)
    payload["optimizer"] = _Payload(marker)
    torch.save(payload, path)
    return path


def test_pickled_object_checkpoint_is_refused(tmp_path: Path, checkpoint: Path) -> None:
    marker = tmp_path / "pwned"
    evil = _evil_checkpoint(tmp_path / "evil.pt", marker, checkpoint)
    with pytest.raises(CheckpointError, match="weights_only=True"):
        load_checkpoint(evil)
    with pytest.raises(CheckpointError, match="weights_only=True"):
        Scorer(evil, device="cpu")
    assert not marker.exists()


def test_daemon_refuses_a_pickled_object_checkpoint(
    tmp_path: Path, checkpoint: Path, sqlite_template: Path
) -> None:
    marker = tmp_path / "pwned"
    evil = _evil_checkpoint(tmp_path / "evil.pt", marker, checkpoint)
    url = fresh_sqlite(sqlite_template, tmp_path / "db")
    (tmp_path / "incoming").mkdir()
    result = subprocess.run(
        [sys.executable, "-m", "monitor.cli", "watch", str(tmp_path / "incoming"), "--db", url,
         "--artifacts", str(tmp_path / "artifacts"), "--checkpoint", str(evil), "--device", "cpu",
         "--no-metrics"],
        capture_output=True, text=True, timeout=120, cwd=Path(__file__).resolve().parents[2],
    )  # fmt: skip
    assert result.returncode == 1, result.stderr[-2000:]
    assert "weights_only=True" in result.stderr
    assert not marker.exists()


def _changed_copy(good: Path, target: Path) -> Path:
    """Another checkpoint: the good one's weights, one bias nudged (another hash, same format)."""
    from monitor.model.autoencoder import ConvAutoencoder

    model, meta, _ = load_checkpoint(good)
    with torch.no_grad():
        next(p for n, p in model.named_parameters() if n.endswith("bias")).add_(1e-3)
    assert isinstance(model, ConvAutoencoder)
    return save_checkpoint(target, model, meta)


def _checkpoint_warnings(log: Path) -> list[dict]:
    lines = [json.loads(x) for x in log.read_text().splitlines() if x.startswith("{")]
    return [x for x in lines if x.get("action") == "checkpoint_changed"]


def _run_once(tmp_path: Path, url: str, ckpt: Path, name: str, seed: int, expected: int) -> Path:
    daemon = start_daemon(tmp_path, url, ckpt, name=name)
    try:
        write_renamed(tmp_path / "incoming" / f"case{seed}_ED.nii.gz", mask_bytes(seed))
        wait_for_end_state(url, expected, alive=lambda: daemon.alive)
    finally:
        assert daemon.stop() == 0, daemon.output()
    return daemon.log


def test_changed_checkpoint_between_runs_is_reported(
    tmp_path: Path, checkpoint: Path, sqlite_template: Path
) -> None:
    """Run 1 scores with checkpoint A; run 2 starts with B: a WARNING names both models; run 3 with B
    again: no warning. The database keeps both models, and each score points to the one that made it."""
    url = fresh_sqlite(sqlite_template, tmp_path / "db")
    other = _changed_copy(checkpoint, tmp_path / "other.pt")
    first = _run_once(tmp_path, url, checkpoint, "run1", 1, 1)
    assert _checkpoint_warnings(first) == []
    second = _run_once(tmp_path, url, other, "run2", 2, 2)
    (warning,) = _checkpoint_warnings(second)
    assert warning["level"] == "WARNING" and warning["previous_model_id"] != warning["model_id"]
    third = _run_once(tmp_path, url, other, "run3", 3, 3)
    assert _checkpoint_warnings(third) == []
    engine = sa.create_engine(url)
    with engine.connect() as connection:
        models = connection.execute(
            sa.text("SELECT id, checkpoint_hash FROM monitor_models ORDER BY id")
        ).all()
        used = connection.execute(sa.text("SELECT model_id FROM mask_files ORDER BY id")).scalars().all()
    engine.dispose()
    assert len(models) == 2 and models[0][1] == warning["previous_checkpoint_sha256"]
    assert used == [models[0][0], models[1][0], models[1][0]]
