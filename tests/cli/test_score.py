"""The command line, run in-process through Typer's runner."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
from typer.testing import CliRunner

from monitor.cli import app
from monitor.io.nifti import load_mask, save_labels
from monitor.qc.labels import Structure
from monitor.sim import remove_structure
from tests.phantoms import phantom_volume, write_phantom

runner = CliRunner()


def _folder(tmp_path):
    masks = tmp_path / "masks"
    write_phantom(masks / "site" / "patient001_ED.nii.gz", seed=1)
    gt = phantom_volume(2)
    save_labels(masks / "patient002_ED.nii.gz", remove_structure(gt.labels, Structure.LV), gt.affine)
    (masks / "broken.nii.gz").write_bytes(b"")
    return masks


def test_score_json_reports_scores_flags_and_rejections(tmp_path):
    masks = _folder(tmp_path)
    result = runner.invoke(app, ["score", str(masks), "--format", "json", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    rows = {r["file"].split("/")[-1]: r for r in json.loads(result.stdout)}
    assert set(rows) == {"patient001_ED.nii.gz", "patient002_ED.nii.gz", "broken.nii.gz"}
    assert rows["broken.nii.gz"]["status"] == "rejected" and rows["broken.nii.gz"]["reason"] == "empty_file"
    missing = rows["patient002_ED.nii.gz"]
    assert missing["flag"] == "erroneous" and missing["flag_LV"] == "erroneous"
    assert "LV missing from the mask" in missing["reasons"]
    good = rows["patient001_ED.nii.gz"]
    assert good["status"] == "scored" and 0 < good["pdsc_LV"] <= 1 and good["phd_mm_LV"] > 0


def test_score_out_writes_maps_in_the_mask_geometry(tmp_path):
    masks = _folder(tmp_path)
    out = tmp_path / "qc"
    result = runner.invoke(
        app, ["score", str(masks), "--out", str(out), "--format", "csv", "--device", "cpu"]
    )
    assert result.exit_code == 0, result.output
    pgt = out / "site" / "patient001_ED_pgt.nii.gz"
    xor = out / "site" / "patient001_ED_inconsistency.nii.gz"
    source = nib.load(str(masks / "site" / "patient001_ED.nii.gz"))
    for path in (pgt, xor):
        img = nib.load(str(path))
        assert img.shape == source.shape
        assert np.allclose(img.affine, source.affine)
    mask, map_ = load_mask(masks / "site" / "patient001_ED.nii.gz"), load_mask(pgt)
    xor_values = np.asanyarray(nib.load(str(xor)).dataobj).transpose(2, 1, 0)
    assert np.array_equal(xor_values.astype(bool), mask.labels != map_.labels)
    assert (out / "scores.csv").read_text().startswith("file,status,flag")
    assert len(json.loads((out / "scores.json").read_text())) == 3


def test_fail_on_erroneous_exits_3_and_table_is_default(tmp_path):
    masks = _folder(tmp_path)
    result = runner.invoke(app, ["score", str(masks), "--fail-on", "erroneous", "--device", "cpu"])
    assert result.exit_code == 3
    assert "erroneous" in result.stdout and "rejected" in result.stdout


def test_missing_path_is_a_usage_error(tmp_path):
    result = runner.invoke(app, ["score", str(tmp_path / "nope")])
    assert result.exit_code == 2


def test_version_and_help():
    assert runner.invoke(app, ["--version"]).stdout.startswith("cmr-monitor ")
    help_text = runner.invoke(app, ["--help"]).stdout
    for command in ("score", "train", "synth", "demo", "db", "status", "export"):
        assert command in help_text
