"""Tests of ``write_failure_set``: prediction-like folders, real metrics, the manifest, determinism."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from monitor.evaluation import pair_cases, read_manifest
from monitor.io.nifti import load_mask
from monitor.qc.scores import compare_structures
from monitor.sim import write_dataset
from monitor.sim.failure_set import write_failure_set
from monitor.sim.failures import FAMILIES


@pytest.fixture(scope="module")
def gt_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("failure-set-gt")
    write_dataset(root, patients=2, seed=3, segmenters=(), images=False)
    return root / "gt"


def test_failure_set_is_laid_out_like_predictions_with_real_metrics(gt_dir: Path, tmp_path: Path) -> None:
    summary = write_failure_set(
        gt_dir, tmp_path / "set", families=["missing_basal", "swapped_slices"], seed=1
    )
    sets = read_manifest(summary.manifest)
    assert [s.name for s in sets] == [
        "missing_basal-1",
        "missing_basal-2",
        "missing_basal-3",
        "swapped_slices-1",
        "swapped_slices-2",
    ]
    assert [s.clearly_wrong for s in sets] == [False, True, True, True, True]
    assert all(s.n_volumes + s.not_applicable == 4 for s in sets)
    basal2 = sets[1]
    assert basal2.folder == (tmp_path / "set" / "missing_basal" / "2").resolve() and basal2.unit == "slices"
    pairing = pair_cases(gt_dir, {basal2.name: basal2.folder})
    assert len(pairing.pairs) == 4 and not pairing.unpaired
    with (basal2.folder / "metrics.csv").open() as handle:
        rows = {r["case"]: r for r in csv.DictReader(handle)}
    for pair in pairing.pairs:
        edited, gt = load_mask(pair.pred_path), load_mask(pair.gt_path)
        heart = np.flatnonzero(gt.labels.any(axis=(1, 2)))
        assert not edited.labels[heart[:2]].any() and np.array_equal(
            edited.labels[heart[2:]], gt.labels[heart[2:]]
        )
        real = {
            c.structure.value.lower(): c for c in compare_structures(edited.labels, gt.labels, gt.spacing_mm)
        }
        row = rows[pair.case]
        assert float(row["dice_lv"]) == pytest.approx(real["lv"].dice, abs=1e-4)
        assert float(row["hd_myo_mm"]) == pytest.approx(real["myo"].hd_mm, abs=1e-3)
        assert int(row["changed_voxels"]) == np.count_nonzero(edited.labels != gt.labels)


def test_failure_set_is_deterministic_and_records_what_it_skipped(gt_dir: Path, tmp_path: Path) -> None:
    first = write_failure_set(gt_dir, tmp_path / "a", families=["displaced_slice", "extra_basal"], seed=7)
    second = write_failure_set(gt_dir, tmp_path / "b", families=["displaced_slice", "extra_basal"], seed=7)
    for a, b in zip(first.sets, second.sets, strict=True):
        for path in sorted(a.folder.glob("*.nii.gz")):
            assert np.array_equal(load_mask(path).labels, load_mask(b.folder / path.name).labels)
    skipped = {name: cases for name, cases in first.skipped.items() if cases}
    for s in first.sets:
        assert s.not_applicable == len(first.skipped[s.name])
        assert s.n_volumes == len(list(s.folder.glob("*.nii.gz")))
    assert all("no room" in reason for cases in skipped.values() for _, reason in cases)


def test_failure_set_refuses_unknown_families_and_cases(gt_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(KeyError, match="unknown failure family"):
        write_failure_set(gt_dir, tmp_path, families=["nonsense"])
    with pytest.raises(KeyError, match="no ground truth"):
        write_failure_set(gt_dir, tmp_path, families=list(FAMILIES)[:1], cases=["patient999_ED"])
