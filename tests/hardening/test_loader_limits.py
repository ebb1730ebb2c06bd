"""The loader on its own: every hostile input of ``hostile.HOSTILE`` gives its reason, and paths that
are not regular files (gone, a folder, a FIFO) are refused without being opened."""

from __future__ import annotations

import os
import resource
from pathlib import Path

import pytest

from monitor.errors import InvalidMask
from monitor.io.nifti import load_mask
from tests.hardening.hostile import HOSTILE


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_hostile_input_reason(kind: str, tmp_path: Path) -> None:
    hostile = HOSTILE[kind]
    path = tmp_path / f"case{hostile.suffix}"
    path.write_bytes(hostile.build())
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if not hostile.reasons:
        assert load_mask(path).labels.ndim == 3
    else:
        with pytest.raises(InvalidMask) as caught:
            load_mask(path)
        assert caught.value.reason in hostile.reasons, caught.value
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mib < 64, f"peak memory grew by {grown_mib:.0f} MiB"


def test_not_regular_files_are_refused_without_opening(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo.nii.gz"
    os.mkfifo(fifo)  # opening it for reading would block forever
    folder = tmp_path / "folder.nii.gz"
    folder.mkdir()
    cases = {tmp_path / "gone.nii.gz": "missing", folder: "not_a_file", fifo: "not_a_file"}
    for path, reason in cases.items():
        with pytest.raises(InvalidMask) as caught:
            load_mask(path)
        assert caught.value.reason == reason, (path, caught.value)
