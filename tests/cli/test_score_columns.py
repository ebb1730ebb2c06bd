"""``cmr-monitor score`` through the installed console script: the columns of CSV and JSON (plain and
refined pDSC/pHD, reason codes per structure, the MR image used or why none was, the estimates and the
failure model's P(failure)) and the table."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from monitor.io.nifti import save_labels
from monitor.qc.labels import STRUCTURES, Structure
from monitor.sim import remove_structure
from tests.phantoms import phantom_volume

EXECUTABLE = Path(sys.executable).with_name("cmr-monitor")
#: Per structure, in this order, after file, status, flag, image, image_reason.
PER_STRUCTURE = ("pdsc", "phd_mm", "pdsc_3d", "phd_mm_3d", "flag", "reasons")


def _image(path: Path, labels: np.ndarray, affine: np.ndarray) -> None:
    data = np.where(labels == 2, 60.0, np.where(labels > 0, 215.0, 90.0)).astype(np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(data.transpose(2, 1, 0), affine), str(path))


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """nnU-Net layout: case_01 with its image in imagesTs, case_02 whose image has one slice too few,
    case_03 without LV and without image; and a file that is no NIfTI."""
    root = tmp_path_factory.mktemp("score") / "Dataset027"
    labels = root / "labelsTs"
    good = phantom_volume(1, n_slices=8, shape_yx=(128, 128))
    save_labels(labels / "case_01.nii.gz", good.labels, good.affine)
    _image(root / "imagesTs" / "case_01_0000.nii.gz", good.labels, good.affine)
    other = phantom_volume(2, n_slices=8, shape_yx=(128, 128))
    save_labels(labels / "case_02.nii.gz", other.labels, other.affine)
    _image(root / "imagesTs" / "case_02_0000.nii.gz", other.labels[:-1], other.affine)
    save_labels(labels / "case_03.nii.gz", remove_structure(other.labels, Structure.LV), other.affine)
    (labels / "case_04.nii.gz").write_bytes(b"")
    return root


def _score(dataset: Path, *options: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(EXECUTABLE), "score", str(dataset / "labelsTs"), "--device", "cpu", *options],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=dataset,
        env={**os.environ, "COLUMNS": "250"},  # a wide terminal: the table's cells unabridged
    )
    assert result.returncode == 0, result.stderr
    return result


def _by_case(rows: list[dict[str, object]]) -> dict[str, dict[str, object]]:
    return {Path(str(r["file"])).name.removesuffix(".nii.gz"): r for r in rows}


def _check_rows(rows: dict[str, dict[str, object]], dataset: Path) -> None:
    """The values both formats share."""
    good, mismatch, missing, broken = rows["case_01"], rows["case_02"], rows["case_03"], rows["case_04"]
    assert good["image"] == str(dataset / "imagesTs" / "case_01_0000.nii.gz")
    assert good["image_reason"] in ("", None)
    assert mismatch["image"] in ("", None) and mismatch["image_reason"] == "geometry_mismatch"
    assert missing["image_reason"] == "not_found"
    assert missing["flag_LV"] == "erroneous"
    assert "missing" in str(missing["reasons_LV"]).split(";")
    assert "LV missing from the mask" in str(missing["reasons"])
    assert missing["pdsc_LV"] in (0, "0.0", "0")
    for row in (good, mismatch):
        for s in STRUCTURES:
            assert 0 < float(str(row[f"pdsc_{s}"])) <= 1  # the paper's plain values
            assert float(str(row[f"phd_mm_{s}"])) > 0
            assert 0 < float(str(row[f"pdsc_3d_{s}"])) <= 1  # against the refined pGT
            assert float(str(row[f"phd_mm_3d_{s}"])) > 0
            codes = str(row[f"reasons_{s}"] or "")
            assert (codes == "") == (row[f"flag_{s}"] == "ok"), (s, codes)
    assert broken["status"] == "rejected" and broken["reason"] == "empty_file"
    # the shipped calibration's failure model: P(real Dice < 0.5 or HD > 50 mm) per present structure
    for row in (good, mismatch):
        for s in STRUCTURES:
            assert 0 <= float(str(row[f"p_failure_{s}"])) <= 1
        assert max(float(str(row[f"p_failure_{s}"])) for s in STRUCTURES) < 0.5  # phantoms segment well
    assert missing["p_failure_LV"] in ("", None)  # a missing structure has no estimate
    assert 0 <= float(str(missing["p_failure_RV"])) <= 1
    for s in STRUCTURES:
        assert broken.get(f"p_failure_{s}") in ("", None)  # an empty cell in CSV, no key in JSON


def test_csv_columns(dataset: Path) -> None:
    result = _score(dataset, "--format", "csv")
    reader = csv.DictReader(io.StringIO(result.stdout))
    header = reader.fieldnames or []
    per_structure = [f"{name}_{s}" for s in STRUCTURES for name in PER_STRUCTURE]
    assert header[:5] == ["file", "status", "flag", "image", "image_reason"]
    assert header[5 : 5 + len(per_structure)] == per_structure
    assert "reasons" in header and "reason" in header and "detail" in header  # the rejected row's
    estimates = header.index("ehd_mm_hi_MYO")  # P(failure) follows the estimates, before the version
    failure = [f"p_failure_{s}" for s in STRUCTURES]
    assert header[estimates + 1 : estimates + 5] == [*failure, "calibration_version"]
    rows = _by_case(list(reader))
    assert set(rows) == {"case_01", "case_02", "case_03", "case_04"}
    _check_rows(rows, dataset)  # type: ignore[arg-type]
    assert rows["case_03"]["phd_mm_LV"] == ""  # undefined: an empty cell


def test_json_has_the_same_names(dataset: Path) -> None:
    result = _score(dataset, "--format", "json")
    rows = _by_case(json.loads(result.stdout))
    _check_rows(rows, dataset)
    scored = rows["case_01"]
    assert list(scored)[: 5 + 3 * len(PER_STRUCTURE)] == [
        "file",
        "status",
        "flag",
        "image",
        "image_reason",
        *(f"{name}_{s}" for s in STRUCTURES for name in PER_STRUCTURE),
    ]
    assert rows["case_03"]["phd_mm_LV"] is None  # undefined: null, never NaN
    assert not any(isinstance(v, float) and math.isnan(v) for r in rows.values() for v in r.values())


def test_table_shows_values_image_and_reasons(dataset: Path) -> None:
    result = _score(dataset, "--format", "table")
    text = result.stdout
    header = text[: text.index("───")]  # two-line headers: the structure over the metric
    for column in ("LV", "MYO", "pDSC", "pHD mm", "image", "reasons"):
        assert column in header
    assert "case_01_0000.nii.gz" in text  # the image used, by name
    assert "geometry_mismatch" in text and "not_found" in text  # why none was
    assert "LV missing from the mask" in text


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_export_carries_the_evidence(tmp_path: Path, suffix: str) -> None:
    """``cmr-monitor export`` (console script): refined values, the checks as JSON, the image columns, the
    failure model's P(failure), and the estimates with their intervals and calibration version at the end
    (empty for a file scored without a calibration)."""
    from dataclasses import replace

    import pandas as pd

    from monitor.io.images import ImagePairing
    from monitor.qc.levels import FlagLevel
    from monitor.qc.reasons import ReasonCode
    from monitor.qc.records import Check, Estimate, StructureScore, VolumeScore
    from monitor.store import enqueue_file, open_session, record_scores, register_model, upgrade

    url = f"sqlite:///{tmp_path / 'm.db'}"
    upgrade(url)
    check = Check(code=ReasonCode.PHD_HIGH, value=31.5, passed=False, slices=(4,))
    structures = tuple(
        StructureScore(
            structure=s,
            pdsc=0.9,
            phd_mm=4.0,
            flag=FlagLevel.SUSPICIOUS if s == Structure.LV else FlagLevel.OK,
            reasons=(ReasonCode.PHD_HIGH,) if s == Structure.LV else (),
            mask_voxels=10,
            pgt_voxels=10,
            mask_volume_ml=1.0,
            pdsc_3d=0.6,
            phd_mm_3d=31.5,
            pgt_volume_ml=1.25,
            evidence=(check,) if s == Structure.LV else (),
            edsc=Estimate(value=0.6, lo=0.4, hi=0.8),
            ehd_mm=Estimate(value=35.0, lo=20.0, hi=60.0),
            p_failure=0.83 if s == Structure.LV else None,
        )
        for s in STRUCTURES
    )
    score = VolumeScore(
        structures=structures,
        flag=FlagLevel.SUSPICIOUS,
        shape=(8, 64, 64),
        spacing_mm=(10.0, 1.5, 1.5),
        slices_scored=8,
        calibration_version="acdc-test",
    )
    plain = replace(
        score,
        structures=tuple(replace(s, edsc=None, ehd_mm=None, p_failure=None) for s in structures),
        calibration_version=None,
    )
    with open_session(url) as session:
        file_id, _ = enqueue_file(
            session,
            path="/w/p1_ED.nii.gz",
            content_hash="1" * 64,
            case_key="p1",
            phase="ED",
            segmenter_name="unet",
            segmenter_version="1",
        )
        pairing = ImagePairing(path=None, used=False, reason="not_found", detail="no MR image found")
        model_id = register_model(session, "f" * 64, {})
        record_scores(session, file_id, score, model_id=model_id, artifacts={}, image=pairing)
        plain_id, _ = enqueue_file(
            session,
            path="/w/p2_ED.nii.gz",
            content_hash="2" * 64,
            case_key="p2",
            phase="ED",
            segmenter_name="unet",
            segmenter_version="1",
        )
        record_scores(session, plain_id, plain, model_id=model_id, artifacts={}, image=pairing)
    out = tmp_path / f"export{suffix}"
    result = subprocess.run(
        [str(EXECUTABLE), "export", "--db", url, "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    frame = pd.read_csv(out) if suffix == ".csv" else pd.read_parquet(out)
    estimates = ["edsc", "edsc_lo", "edsc_hi", "ehd_mm", "ehd_mm_lo", "ehd_mm_hi"]
    assert list(frame.columns[-8:]) == ["p_failure", *estimates, "calibration_version"]
    assert len(frame) == 6
    unestimated = frame[frame["file_id"] == plain_id]
    assert unestimated[estimates].isna().all().all() and unestimated["calibration_version"].isna().all()
    frame = frame[frame["file_id"] == file_id]
    assert (frame[estimates].to_numpy() == [0.6, 0.4, 0.8, 35.0, 20.0, 60.0]).all()
    assert set(frame["calibration_version"]) == {"acdc-test"}
    lv = frame.set_index("structure").loc["LV"]
    assert (lv["pdsc"], lv["pdsc_3d"], lv["phd_mm_3d"], lv["pgt_volume_ml"]) == (0.9, 0.6, 31.5, 1.25)
    assert (bool(lv["image_used"]), lv["image_reason"]) == (False, "not_found")
    assert lv["p_failure"] == 0.83
    assert math.isnan(frame.set_index("structure").loc["RV", "p_failure"])  # no failure model: empty
    assert json.loads(lv["evidence"]) == [{"code": "phd_high", "value": 31.5, "passed": False, "slices": [4]}]
