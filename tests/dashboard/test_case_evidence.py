# ruff: noqa: F811  (pytest fixtures imported above are parameters below)
"""The case page's evidence through ``streamlit.testing.v1.AppTest`` (SQLite and PostgreSQL): each reason
with its text (from the refined pDSC/pHD), value and slices; a button per reason jumps the slice viewer
to the first slice its check implicates; every check in a table; whether the MR image was used; the
failure model's P(failure) beside an estimate flag, in the scores table and on the Alerts page."""

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
    failure model's P(failure) 0.83); its MR image not used (another geometry)."""
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
    assert md_escape("MYO real HD probably above the threshold") + " `ehd_high` · P(fail) 83 %" in shown
    assert shown.count("P(fail)") == 1

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
    checks = at.dataframe[1].value
    assert list(checks["code"]) == ["phd_high", "pdsc_low", "centroid_jump", "vanished"]  # failed first
    assert list(checks["slices"]) == ["6, 7", "3", "5, 6", ""]
    assert list(checks["check"])[2] == "displaced slice"
    assert any("All checks (4, 3 failed)" in e.label for e in at.expander)
    assert "MR image not used: geometry_mismatch (image shape [7, 96, 96])." in " ".join(_texts(at.caption))


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
    """The Alerts page's P(fail): the highest of the file's structures, in percent, a sortable number."""
    file_id, artifacts = flagged
    at = app_test(db_url, artifacts_dir=str(artifacts)).run()
    at.switch_page("views/alerts.py").run()
    assert not at.exception, [e.value for e in at.exception]
    table = at.dataframe[0].value.set_index("file_id")
    assert table.loc[file_id, "p_failure_pct"] == pytest.approx(83.0)
    assert table["p_failure_pct"].dtype.kind == "f"  # a number, so the column sorts
