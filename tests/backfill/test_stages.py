"""The backfill's decode and scoring stages as plain functions and classes (no Ray): the daemon's
examination, skipping of stored contents, manifest overrides, the real ``Scorer`` and failure isolation."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from monitor.backfill.decode import (
    OUTCOME_REJECTED,
    OUTCOME_SCORE,
    OUTCOME_SKIPPED,
    DecodeOptions,
    decode_batch,
    decode_entry,
    unpack,
)
from monitor.backfill.scoring import ScorerOptions, ScoreWorker
from monitor.io.identity import IngestConfig
from monitor.io.nifti import Limits, MaskVolume, load_mask
from monitor.qc.labels import ACDC
from tests.phantoms import write_phantom

OPTIONS = DecodeOptions(ingest=IngestConfig(), label_map=ACDC, limits=Limits())
#: Names must be {case}_{phase}.
STRICT = DecodeOptions(
    ingest=IngestConfig(name_patterns=(r"(?P<case>.+)_(?P<phase>ED|ES)",)), label_map=ACDC, limits=Limits()
)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    target = tmp_path / "unet" / "1.0"
    target.mkdir(parents=True)
    return target


def test_a_valid_mask_is_named_hashed_and_validated(folder: Path, tmp_path: Path) -> None:
    path = write_phantom(folder / "patient007_es.nii.gz", seed=7, phase="ES")
    row = decode_entry(str(path), str(tmp_path), {}, OPTIONS, {})
    assert row["outcome"] == OUTCOME_SCORE and row["reason"] is None
    assert row["content_hash"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert (row["case_key"], row["phase"]) == ("patient007", "ES")
    assert (row["segmenter_name"], row["segmenter_version"]) == ("unet", "1.0")
    volume, paired = unpack(row["payload"])
    assert isinstance(volume, MaskVolume) and volume.labels.dtype == np.uint8
    assert (paired.pairing.used, paired.pairing.reason, paired.data) == (False, "not_found", None)
    assert set(np.unique(volume.labels)) == {0, 1, 2, 3}


def test_a_stored_content_is_skipped_unread(folder: Path, tmp_path: Path) -> None:
    path = write_phantom(folder / "p1_ED.nii.gz")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    row = decode_entry(str(path), str(tmp_path), {}, OPTIONS, {digest: False})
    assert row["outcome"] == OUTCOME_SKIPPED and row["payload"] is None and row["reason"] is None
    assert not row["stale"]


def test_a_stale_content_is_scored_again_unless_kept(folder: Path, tmp_path: Path) -> None:
    """A stored content whose score is stale (another checkpoint or calibration) is examined and
    scored again, its row marked ``stale``; with ``rescore_stale`` off it is skipped, reason ``stale``."""
    path = write_phantom(folder / "p1_ED.nii.gz")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    again = decode_entry(str(path), str(tmp_path), {}, OPTIONS, {digest: True})
    assert again["outcome"] == OUTCOME_SCORE and again["stale"] and again["case_key"] == "p1"
    keep = replace(OPTIONS, rescore_stale=False)
    kept = decode_entry(str(path), str(tmp_path), {}, keep, {digest: True})
    assert (kept["outcome"], kept["reason"], kept["payload"]) == (OUTCOME_SKIPPED, "stale", None)


def test_manifest_fields_win_over_folders(folder: Path, tmp_path: Path) -> None:
    path = write_phantom(folder / "p1_ED.nii.gz")
    overrides = {"segmenter_name": "nnunet", "site": "leeds"}
    row = decode_entry(str(path), str(tmp_path), overrides, OPTIONS, {})
    assert (row["segmenter_name"], row["segmenter_version"], row["site"]) == ("nnunet", "1.0", "leeds")


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("p1_ED.nii.gz", b"", "empty_file"),
        ("p1_ED.nii.gz", b"patient name: nobody\n" * 40, "not_nifti"),
        ("scan.nii.gz", None, "bad_name"),
        ("p1_ED.nii.gz", "missing", "missing"),
    ],
    ids=["empty", "text", "bad_name", "missing"],
)
def test_a_bad_file_is_rejected_with_the_daemons_reason(
    folder: Path, tmp_path: Path, name: str, content: bytes | str | None, reason: str
) -> None:
    path = folder / name
    if content is None:
        write_phantom(path)
    elif isinstance(content, bytes):
        path.write_bytes(content)
    row = decode_entry(str(path), str(tmp_path), {}, STRICT, {})
    assert (row["outcome"], row["reason"]) == (OUTCOME_REJECTED, reason)
    assert row["case_key"] and row["detail"] and row["payload"] is None


def test_decode_batch_gives_one_row_per_entry(folder: Path, tmp_path: Path) -> None:
    paths = [str(write_phantom(folder / f"p{i}_ED.nii.gz", seed=i)) for i in range(2)]
    batch = pd.DataFrame({"path": paths, "root": [str(tmp_path)] * 2, "overrides": [json.dumps({})] * 2})
    out = decode_batch(batch, options=OPTIONS, known={})
    assert list(out["path"]) == paths and list(out["outcome"]) == [OUTCOME_SCORE] * 2


def test_score_worker_scores_valid_rows_and_isolates_a_failure(folder: Path, tmp_path: Path) -> None:
    """Valid rows are scored (their artifacts staged by row number), a rejected row passes through, a
    volume the scorer fails on is rejected alone."""
    paths = [str(write_phantom(folder / f"p{i}_ED.nii.gz", seed=i)) for i in range(2)]
    paths.append(str(folder / "bad_ED.nii.gz"))
    Path(paths[2]).write_bytes(b"")
    rows = [decode_entry(p, str(tmp_path), {}, OPTIONS, {}) for p in paths]
    broken = MaskVolume(labels=np.zeros((4, 4), np.uint8), spacing_mm=(8.0, 1.5, 1.5), affine=np.eye(4))
    no_image = unpack(rows[0]["payload"])[1]
    rows.append({**rows[0], "path": "/x/broken_ED.nii.gz", "payload": _pack((broken, no_image))})
    frame = pd.DataFrame(rows)
    frame["seq"] = [10, 11, 12, 13]
    staging = tmp_path / "staging"
    worker = ScoreWorker(ScorerOptions(device="cpu", threads=1, staging=str(staging)))
    out = worker(frame)
    assert list(out["outcome"]) == [OUTCOME_SCORE, OUTCOME_SCORE, OUTCOME_REJECTED, OUTCOME_REJECTED]
    assert list(out["reason"])[2:] == ["empty_file", "scoring_failed"]
    for i in range(2):
        score, staged, pairing = unpack(out["payload"][i])
        volume = unpack(rows[i]["payload"])[0]
        assert not score.image_used and pairing.reason == "not_found"
        assert score.shape == volume.shape
        assert {str(s.structure) for s in score.structures} == {"LV", "RV", "MYO"}
        assert set(staged) == {"pgt", "inconsistency"}
        pgt = load_mask(staged["pgt"])
        assert Path(staged["pgt"]).name == f"{10 + i}_pgt.nii.gz" and pgt.shape == volume.shape
        assert np.allclose(pgt.affine, volume.affine)
    assert out["payload"][2] is None and out["payload"][3] is None


def _pack(value: object) -> bytes:
    from monitor.backfill.decode import pack

    return pack(value)


def test_a_listed_link_may_lead_anywhere_a_walked_one_may_not(folder: Path, tmp_path: Path) -> None:
    """A manifest's path (``confined=False``) may be a symbolic link into another store; in a folder
    walk, as in the daemon, a link that leads outside the folder is refused unopened."""
    target = write_phantom(tmp_path / "store" / "x.nii.gz")
    link = folder / "p1_ED.nii.gz"
    link.symlink_to(target)
    listed = decode_entry(str(link), str(folder), {}, OPTIONS, {}, confined=False)
    assert listed["outcome"] == OUTCOME_SCORE and listed["case_key"] == "p1"
    walked = decode_entry(str(link), str(tmp_path / "unet"), {}, OPTIONS, {})
    assert (walked["outcome"], walked["reason"]) == (OUTCOME_REJECTED, "outside_folder")
