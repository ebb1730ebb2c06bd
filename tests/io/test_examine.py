"""``monitor.io.examine``: the per-file examination the daemon's intake and the backfill share."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from monitor.io.examine import examine, fingerprint
from monitor.io.identity import IngestConfig
from monitor.io.nifti import Limits
from monitor.qc.labels import ACDC
from tests.phantoms import write_phantom


def _examine(path: Path, root: Path):  # type: ignore[no-untyped-def]
    return examine(path, root, path.stat(), ingest=IngestConfig(), label_map=ACDC, limits=Limits())


def test_a_valid_mask_gives_its_hash_identity_and_volume(tmp_path: Path) -> None:
    path = write_phantom(tmp_path / "unet" / "2.0" / "patient003_ED.nii.gz", seed=3)
    found = _examine(path, tmp_path)
    assert found is not None and found.problem is None and found.changed is None
    assert found.content_hash == hashlib.sha256(path.read_bytes()).hexdigest()
    assert (found.identity.case_key, found.identity.phase) == ("patient003", "ED")
    assert (found.identity.segmenter_name, found.identity.segmenter_version) == ("unet", "2.0")
    assert found.volume is not None and found.volume.labels.dtype == np.uint8
    assert found.size == path.stat().st_size


def test_a_broken_sidecar_is_a_transient_problem_with_a_fallback_name(tmp_path: Path) -> None:
    path = write_phantom(tmp_path / "p1_ES.nii.gz")
    (tmp_path / "p1_ES.json").write_text('{"segmenter": ')
    found = _examine(path, tmp_path)
    assert found is not None and found.volume is None
    assert found.problem is not None and (found.problem.reason, found.problem.transient) == (
        "bad_sidecar",
        True,
    )
    assert (found.identity.case_key, found.identity.phase) == ("p1", "ES")


def test_an_invalid_mask_gives_the_loaders_reason(tmp_path: Path) -> None:
    path = tmp_path / "p1_ED.nii.gz"
    path.write_bytes(b"")
    found = _examine(path, tmp_path)
    assert found is not None and found.problem is not None
    assert (found.problem.reason, found.problem.transient) == ("empty_file", True)


def test_a_fifo_and_a_link_outside_are_refused_unopened(tmp_path: Path) -> None:
    root = tmp_path / "watched"
    root.mkdir()
    fifo = root / "p1_ED.nii.gz"
    os.mkfifo(fifo)
    refused = fingerprint(fifo, root, fifo.stat())
    assert refused.problem is not None and refused.problem.reason == "not_a_file"
    assert refused.content_hash.startswith("not_a_file:")
    outside = write_phantom(tmp_path / "elsewhere_ED.nii.gz")
    link = root / "p2_ED.nii.gz"
    link.symlink_to(outside)
    found = _examine(link, root)
    assert found is not None and found.problem is not None and found.problem.reason == "outside_folder"


def test_a_file_that_vanished_gives_none(tmp_path: Path) -> None:
    path = write_phantom(tmp_path / "p1_ED.nii.gz")
    st = path.stat()
    path.unlink()
    assert examine(path, tmp_path, st, ingest=IngestConfig(), label_map=ACDC, limits=Limits()) is None
