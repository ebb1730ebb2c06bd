# ruff: noqa: F811  (pytest fixtures imported above are parameters below)
"""The case page's evidence through ``streamlit.testing.v1.AppTest`` (SQLite and PostgreSQL): each reason
with its text (from the refined pDSC/pHD), value and slices; a button per reason jumps the slice viewer
to the first slice its check implicates; every check in a table; whether the MR image was used; the
failure model's P(failure) and the calibrated eDSC/eHD with their intervals beside an estimate flag, in
the scores table and on the Alerts page (P(fail), lowest eDSC); the calibration version; "–" for a file
scored without a calibration."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy.orm import Session

from dashboard.evidence import image_status, reason_items
from dashboard.summaries import md_escape
from monitor.io.images import ImagePairing
from monitor.io.nifti import save_labels
from monitor.qc.labels import Structure
from monitor.qc.levels import FlagLevel
from monitor.qc.reasons import ReasonCode
from monitor.qc.records import Check, Estimate, StructureScore, VolumeScore
from monitor.store import (
    ARTIFACT_INCONSISTENCY,
    ARTIFACT_PGT,
    enqueue_file,
    get_case,
    record_scores,
    register_model,
)
from tests.pg import backend_fixture, sqlite_template  # noqa: F401  (fixtures)
from tests.phantoms import phantom_volume
from tests.store.conftest import db_url, engine, postgres, session  # noqa: F401  (fixtures)

_N_SLICES = 8


def _score(
    structure: Structure,
    flag: FlagLevel,
    reasons,
    evidence=(),
    pdsc_3d=np.nan,
    phd_3d=np.nan,
    p_failure: float | None = None,
):
    estimates = (
        {"edsc": Estimate(value=0.62, lo=0.35, hi=0.85), "ehd_mm": Estimate(value=47.0, lo=22.0, hi=90.0)}
        if p_failure is not None
        else {}
    )
    return StructureScore(
        structure=structure,
        pdsc=0.9,
        phd_mm=4.0,
        flag=flag,
        reasons=reasons,
        mask_voxels=100,
        pgt_voxels=100,
        mask_volume_ml=10.0,
        pdsc_3d=pdsc_3d,
        phd_mm_3d=phd_3d,
        pgt_volume_ml=12.5,
        evidence=evidence,
        p_failure=p_failure,
        **estimates,
    )


@pytest.fixture
def flagged(session: Session, tmp_path: Path) -> tuple[int, Path]:
    """One scored file with its mask and maps in an artifacts folder: LV flagged by three failed checks
    (pHD 3D 31.2 mm at slices 6-7, pDSC 3D 0.41 at slice 3, a centroid jump of 14.2 mm at slices 5-6)
    beside one that passed; RV missing (no check); MYO flagged by the calibration (``ehd_high``, the
    failure model's P(failure) 0.83, eDSC 0.62 (0.35-0.85), eHD 47.0 mm (22.0-90.0)); scored with the
    calibration ``acdc-test``; its MR image not used (another geometry)."""
    artifacts = tmp_path / "artifacts"
    volume = phantom_volume(4, n_slices=_N_SLICES, shape_yx=(96, 96))
    mask = save_labels(artifacts / "masks" / "p9_ED.nii.gz", volume.labels, volume.affine)
    pgt = shutil.copyfile(mask, artifacts / "p9_ED_pgt.nii.gz")
    xor = save_labels(artifacts / "p9_ED_xor.nii.gz", np.zeros_like(volume.labels), volume.affine)
    lv_checks = (
        Check(code=ReasonCode.PHD_HIGH, value=31.2, passed=False, slices=(5, 6)),
        Check(code=ReasonCode.PDSC_LOW, value=0.41, passed=False, slices=(2,)),
        Check(code=ReasonCode.CENTROID_JUMP, value=14.2, passed=False, slices=(4, 5)),
        Check(code=ReasonCode.VANISHED, value=0.0, passed=True),
    )
    score = VolumeScore(
        structures=(
            _score(
                Structure.LV,
                FlagLevel.SUSPICIOUS,
                (ReasonCode.PHD_HIGH, ReasonCode.PDSC_LOW, ReasonCode.CENTROID_JUMP),
                lv_checks,
                pdsc_3d=0.41,
                phd_3d=31.2,
            ),
            _score(Structure.RV, FlagLevel.ERRONEOUS, (ReasonCode.MISSING,)),
            _score(Structure.MYO, FlagLevel.SUSPICIOUS, (ReasonCode.EHD_HIGH,), p_failure=0.83),
        ),
        flag=FlagLevel.ERRONEOUS,
        shape=volume.shape,
        spacing_mm=volume.spacing_mm,
        slices_scored=_N_SLICES,
        calibration_version="acdc-test",
    )
    file_id, _ = enqueue_file(
        session,
        path=str(mask),
        content_hash="9" * 64,
        case_key="p9",
        phase="ED",
        segmenter_name="unet",
        segmenter_version="1",
    )
    pairing = ImagePairing(
        path="/scans/p9.nii.gz", used=False, reason="geometry_mismatch", detail="image shape [7, 96, 96]"
    )
    model_id = register_model(session, "e" * 64, {})
    record_scores(
        session,
        file_id,
        score,
        model_id=model_id,
        artifacts={ARTIFACT_PGT: str(pgt), ARTIFACT_INCONSISTENCY: str(xor)},
        image=pairing,
    )
    return file_id, artifacts


def _texts(elements: object) -> list[str]:
    return [str(e.value) for e in elements]  # type: ignore[attr-defined]


def _caption_of_first_image(at) -> str:  # type: ignore[no-untyped-def]
    return at.get("image")[0].proto.imgs[0].caption


def test_reasons_listed_and_jump_to_their_slice(db_url: str, flagged: tuple[int, Path], app_test) -> None:
    file_id, artifacts = flagged
    at = app_test(db_url, artifacts_dir=str(artifacts)).run()
    at.query_params["file_id"] = str(file_id)
    at.switch_page("views/case.py").run()
    assert not at.exception, [e.value for e in at.exception]

    shown = " ".join(_texts(at.markdown))
    assert (
        md_escape("LV pHD 31.2 mm above the threshold") + " `phd_high` · value 31.2 · slices 6, 7" in shown
    )  # the refined pHD
    assert md_escape("LV pDSC 0.41 below the threshold") + " `pdsc_low` · value 0.41 · slices 3" in shown
    assert md_escape("RV missing from the mask") + " `missing`" in shown
    buttons = {b.label: b for b in at.button if b.label.startswith("Slice ")}
    assert (
        md_escape("LV centre jumps 14.2 mm between slices") + " `centroid_jump` · value 14.2 · slices 5, 6"
        in shown
    )
    assert set(buttons) == {"Slice 6", "Slice 3", "Slice 5"}  # none for a reason without a check
    # the failure model's probability behind the estimate flag, only there
    assert (
        md_escape("MYO real HD probably above the threshold")
        + " `ehd_high` · eHD 47.0 mm (22.0-90.0) · P(fail) 83 %"
        in shown
    )
    assert shown.count("P(fail)") == 1 and shown.count("eHD") == 1

    buttons["Slice 6"].click().run()
    assert at.slider(key=f"case_slice_{file_id}").value == 6
    assert _caption_of_first_image(at) == f"Mask, slice 6 of {_N_SLICES}"
    next(b for b in at.button if b.label == "Slice 3").click().run()
    assert at.slider(key=f"case_slice_{file_id}").value == 3
    assert _caption_of_first_image(at) == f"Mask, slice 3 of {_N_SLICES}"
    at.slider(key=f"case_slice_{file_id}").set_value(8).run()  # the slider still moves by hand
    assert _caption_of_first_image(at) == f"Mask, slice 8 of {_N_SLICES}"

    scores = at.dataframe[0].value.set_index("structure")
    assert scores.loc["LV", "pdsc_3d"] == pytest.approx(0.41) and scores.loc["LV", "pdsc"] == pytest.approx(
        0.9
    )
    assert scores.loc["LV", "phd_mm_3d"] == pytest.approx(31.2) and scores.loc["LV", "pgt_volume_ml"] == 12.5
    assert np.isnan(scores.loc["RV", "pdsc_3d"])
    assert scores.loc["MYO", "p_failure_pct"] == pytest.approx(83.0)  # shown as "83 %"
    assert np.isnan(scores.loc["LV", "p_failure_pct"]) and np.isnan(scores.loc["RV", "p_failure_pct"])
    assert list(scores["edsc_interval"]) == ["–", "–", "0.62 (0.35-0.85)"]  # only MYO was estimated
    assert list(scores["ehd_interval"]) == ["–", "–", "47.0 mm (22.0-90.0)"]
    columns = list(scores.reset_index().columns)
    assert columns.index("ehd_interval") + 1 == columns.index("pdsc_3d")  # beside pDSC and pHD
    checks = at.dataframe[1].value
    assert list(checks["code"]) == ["phd_high", "pdsc_low", "centroid_jump", "vanished"]  # failed first
    assert list(checks["slices"]) == ["6, 7", "3", "5, 6", ""]
    assert list(checks["check"])[2] == "displaced slice"
    assert any("All checks (4, 3 failed)" in e.label for e in at.expander)
    captions = " ".join(_texts(at.caption))
    assert "MR image not used: geometry_mismatch (image shape [7, 96, 96])." in captions
    assert md_escape("Estimates by calibration acdc-test.") in captions


def test_reason_items_and_image_status_of_a_file_scored_before(
    session: Session, flagged: tuple[int, Path]
) -> None:
    file_id, _ = flagged
    record = get_case(session, file_id)
    assert record is not None
    items = reason_items(record)
    assert [(i.structure, i.code, i.first_slice) for i in items] == [
        ("LV", "phd_high", 5),
        ("LV", "pdsc_low", 2),
        ("LV", "centroid_jump", 4),
        ("RV", "missing", None),
        ("MYO", "ehd_high", None),
    ]
    assert items[0].title == "pHD high"
    assert [i.p_failure for i in items][-1] == 0.83 and all(np.isnan(i.p_failure) for i in items[:-1])
    assert [i.estimate for i in items] == ["", "", "", "", "eHD 47.0 mm (22.0-90.0)"]
    # a record without evidence (scored before it existed): plain values in the text, no slices
    from dataclasses import replace

    plain = replace(
        record,
        image_used=None,
        structures=tuple(
            replace(s, evidence=(), pdsc_3d=np.nan, phd_mm_3d=np.nan) for s in record.structures
        ),
    )
    first = reason_items(plain)[0]
    assert (first.text, first.slices) == ("LV pHD 4.0 mm above the threshold", ())
    assert np.isnan(first.value)
    assert image_status(plain).startswith("MR image evidence: not recorded")
    assert image_status(replace(record, image_used=True)) == "MR image used as evidence."


def test_alerts_list_the_failure_probability(db_url: str, flagged: tuple[int, Path], app_test) -> None:
    """The Alerts page's P(fail), the highest of the file's structures in percent, and its lowest eDSC:
    sortable numbers."""
    file_id, artifacts = flagged
    at = app_test(db_url, artifacts_dir=str(artifacts)).run()
    at.switch_page("views/alerts.py").run()
    assert not at.exception, [e.value for e in at.exception]
    table = at.dataframe[0].value.set_index("file_id")
    assert table.loc[file_id, "p_failure_pct"] == pytest.approx(83.0)
    assert table["p_failure_pct"].dtype.kind == "f"  # a number, so the column sorts
    assert table.loc[file_id, "edsc_min"] == pytest.approx(0.62)  # MYO's, the only one estimated
    assert table["edsc_min"].dtype.kind == "f"


@pytest.fixture(scope="module")
def shipped_and_plain() -> tuple[VolumeScore, VolumeScore]:
    """A failing segmentation of a phantom scored with the shipped calibration, and without one."""
    from monitor.io.calibration import default_calibration_path, load_calibration
    from monitor.model.scorer import Scorer
    from tests.phantoms import segmented_volume

    if not default_calibration_path().is_file():
        pytest.skip("no shipped calibration")
    failing, _ = segmented_volume(3, "failing")
    calibrated = Scorer(device="cpu", calibration=load_calibration()).score_batch([failing])[0].score
    plain = Scorer(device="cpu", calibration=None).score_batch([failing])[0].score
    return calibrated, plain


def _interval(estimate: Estimate | None, digits: int, unit: str = "") -> str:
    """How the case page writes an estimate: ``"0.41 (0.22-0.63)"``, ``"47.0 mm (22.0-90.0)"``, or "–"."""
    if estimate is None:
        return "–"
    value = f"{estimate.value:.{digits}f}" + (f" {unit}" if unit else "")
    return f"{value} ({estimate.lo:.{digits}f}-{estimate.hi:.{digits}f})"


def test_the_shipped_estimates_on_the_case_and_alerts_pages(
    session: Session, db_url: str, tmp_path: Path, shipped_and_plain, app_test
) -> None:
    """A phantom scored with the shipped calibration shows its ``StructureScore``'s eDSC and eHD with their
    intervals in the scores table, beside its estimate flags, and its lowest eDSC on the Alerts page; the
    same mask scored without a calibration shows "–" and says so, without an error."""
    model_id = register_model(session, "d" * 64, {})
    ids = []
    for i, score in enumerate(shipped_and_plain):
        file_id, _ = enqueue_file(
            session,
            path=str(tmp_path / f"s{i}_ED.nii.gz"),
            content_hash=f"{i}" * 64,
            case_key=f"s{i}",
            phase="ED",
            segmenter_name="unet",
            segmenter_version="1",
        )
        record_scores(session, file_id, score, model_id=model_id, artifacts={})
        ids.append(file_id)
    calibrated, plain = shipped_and_plain
    assert calibrated.calibration_version is not None and plain.calibration_version is None
    at = app_test(db_url, artifacts_dir=str(tmp_path)).run()
    at.query_params["file_id"] = str(ids[0])
    at.switch_page("views/case.py").run()
    assert not at.exception, [e.value for e in at.exception]
    scores = at.dataframe[0].value.set_index("structure")
    expected_edsc = [_interval(s.edsc, 2) for s in calibrated.structures]
    expected_ehd = [_interval(s.ehd_mm, 1, "mm") for s in calibrated.structures]
    assert list(scores["edsc_interval"]) == expected_edsc
    assert list(scores["ehd_interval"]) == expected_ehd
    assert sum(text != "–" for text in expected_edsc) >= 2  # estimated structures, not only dashes
    shown = " ".join(_texts(at.markdown))
    flagged = 0
    for s, edsc, ehd in zip(calibrated.structures, expected_edsc, expected_ehd, strict=True):
        if ReasonCode.EDSC_LOW in s.reasons:
            assert f"`edsc_low` · eDSC {edsc} · P(fail)" in shown
            flagged += 1
        if ReasonCode.EHD_HIGH in s.reasons:
            assert f"`ehd_high` · eHD {ehd} · P(fail)" in shown
            flagged += 1
    assert flagged >= 1  # the failing segmentation is flagged by its estimates
    assert md_escape(f"Estimates by calibration {calibrated.calibration_version}.") in " ".join(
        _texts(at.caption)
    )

    at.query_params["file_id"] = str(ids[1])
    at.switch_page("views/case.py").run()
    assert not at.exception, [e.value for e in at.exception]
    scores = at.dataframe[0].value
    assert set(scores["edsc_interval"]) == set(scores["ehd_interval"]) == {"–"}
    assert "eDSC" not in " ".join(_texts(at.markdown)) and "eHD" not in " ".join(_texts(at.markdown))
    assert md_escape("Scored without a calibration: no estimates (–).") in " ".join(_texts(at.caption))

    at.switch_page("views/alerts.py").run()
    assert not at.exception, [e.value for e in at.exception]
    table = at.dataframe[0].value.set_index("file_id")
    lowest = min(s.edsc.value for s in calibrated.structures if s.edsc is not None)
    assert table.loc[ids[0], "edsc_min"] == lowest  # the stored value, not a rounded copy
    assert np.isnan(table.loc[ids[1], "edsc_min"])  # no calibration: empty
