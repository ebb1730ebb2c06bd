"""The Scorer with the shipped checkpoint, on synthetic phantoms."""

from __future__ import annotations

import math

import numpy as np
import pytest

from monitor.io.nifti import MaskVolume
from monitor.model import Scorer
from monitor.qc.flags import FlagPolicy
from monitor.qc.labels import MNMS, Structure
from monitor.qc.levels import FlagLevel
from monitor.qc.reasons import ReasonCode, describe_all
from monitor.sim import make_phantom, remove_structure


@pytest.fixture(scope="module")
def scorer() -> Scorer:
    return Scorer(device="cpu")


def _volume(labels: np.ndarray, spacing, affine=None) -> MaskVolume:
    return MaskVolume(labels=labels, spacing_mm=spacing, affine=affine if affine is not None else np.eye(4))


@pytest.fixture(scope="module")
def phantom():
    return make_phantom(np.random.default_rng(7))


def test_pgt_and_map_live_in_the_mask_geometry(scorer, phantom):
    result = scorer.score(_volume(phantom.labels, phantom.spacing_mm, phantom.affine))
    assert result.pgt.shape == phantom.labels.shape
    assert result.pgt.dtype == np.uint8
    assert np.array_equal(result.inconsistency, result.pgt != phantom.labels)
    assert result.score.shape == phantom.labels.shape
    assert result.score.slices_scored == int(phantom.labels.reshape(phantom.labels.shape[0], -1).any(1).sum())
    # slices without foreground are not reconstructed: their pGT is background
    empty = ~phantom.labels.reshape(phantom.labels.shape[0], -1).any(1)
    assert not result.pgt[empty].any()


def test_plausible_mask_is_not_erroneous_and_scores_are_in_range(scorer, phantom):
    score = scorer.score(_volume(phantom.labels, phantom.spacing_mm)).score
    assert score.flag != FlagLevel.ERRONEOUS
    for s in score.structures:
        assert 0.0 <= s.pdsc <= 1.0
        assert s.phd_mm >= 0.0
        assert s.mask_voxels > 0 and s.pgt_voxels > 0
        assert s.mask_volume_ml == pytest.approx(s.mask_voxels * np.prod(phantom.spacing_mm) / 1000)


@pytest.mark.parametrize("structure", [Structure.LV, Structure.RV, Structure.MYO])
def test_mask_with_a_structure_removed_is_erroneous(scorer, phantom, structure):
    labels = remove_structure(phantom.labels, structure)
    score = scorer.score(_volume(labels, phantom.spacing_mm)).score
    assert score.structure(structure).flag == FlagLevel.ERRONEOUS
    assert score.structure(structure).reasons == (ReasonCode.MISSING,)
    assert describe_all([score.structure(structure)]) == (f"{structure.value} missing from the mask",)
    assert score.flag == FlagLevel.ERRONEOUS
    assert math.isnan(score.structure(structure).phd_mm)


def test_batch_scoring_equals_one_by_one(scorer):
    rng = np.random.default_rng(11)
    phantoms = [make_phantom(rng) for _ in range(3)]
    volumes = [_volume(p.labels, p.spacing_mm) for p in phantoms]
    batch = scorer.score_batch(volumes)
    for volume, together in zip(volumes, batch, strict=True):
        alone = scorer.score(volume)
        assert np.array_equal(alone.pgt, together.pgt)
        for a, b in zip(alone.score.structures, together.score.structures, strict=True):
            assert a.pdsc == pytest.approx(b.pdsc) and a.flag == b.flag


def test_scores_do_not_depend_on_the_label_map(scorer, phantom, tmp_path):
    from monitor.io.nifti import load_mask, save_labels

    acdc_path = save_labels(tmp_path / "a.nii.gz", phantom.labels, phantom.affine)
    mnms_path = save_labels(tmp_path / "m.nii.gz", phantom.labels, phantom.affine, MNMS)
    a = scorer.score(load_mask(acdc_path)).score
    m = scorer.score(load_mask(mnms_path, MNMS)).score
    for sa, sm in zip(a.structures, m.structures, strict=True):
        assert sa.pdsc == pytest.approx(sm.pdsc)


def test_thresholds_are_configurable(phantom):
    strict = Scorer(device="cpu", policy=FlagPolicy(suspicious_hd_mm=0.1, suspicious_dice=0.999))
    score = strict.score(_volume(phantom.labels, phantom.spacing_mm)).score
    assert score.flag == FlagLevel.SUSPICIOUS
    codes = {code for s in score.structures for code in s.reasons}
    assert codes == {ReasonCode.PHD_HIGH, ReasonCode.PDSC_LOW}


def test_empty_mask_is_erroneous_for_every_structure(scorer):
    score = scorer.score(_volume(np.zeros((5, 64, 64), np.uint8), (10.0, 1.5, 1.5))).score
    assert score.slices_scored == 0
    assert all(s.flag == FlagLevel.ERRONEOUS for s in score.structures)


def test_cpu_workers_give_the_same_results_in_input_order(scorer):
    from tests.phantoms import phantom_volume, segmented_volume

    volumes = [phantom_volume(21), segmented_volume(22, "poor")[0], phantom_volume(23, "ES")]
    threaded = Scorer(device="cpu", cpu_workers=3)
    assert threaded.cpu_workers == 3 and scorer.cpu_workers == 1
    for a, b in zip(scorer.score_batch(volumes), threaded.score_batch(volumes), strict=True):
        assert np.array_equal(a.pgt, b.pgt)
        assert a.score.structures == b.score.structures
        assert a.score.flag == b.score.flag


@pytest.mark.parametrize(
    "n,most,expected",
    [
        (0, 16, []),
        (1, 16, [1]),
        (16, 16, [16]),
        (17, 16, [9, 8]),
        (33, 16, [11, 11, 11]),
        (130, 16, [15] * 4 + [14] * 5),
    ],
)
def test_pass_sizes_are_few_and_even(n, most, expected):
    from monitor.model.scorer import pass_sizes

    sizes = pass_sizes(n, most)
    assert sizes == expected
    assert sum(sizes) == n and all(1 <= s <= most for s in sizes)
    assert not sizes or max(sizes) - min(sizes) <= 1


def test_bad_batch_settings_are_refused():
    with pytest.raises(ValueError, match="batch_slices"):
        Scorer(device="cpu", batch_slices=0)
    with pytest.raises(ValueError, match="cpu_workers"):
        Scorer(device="cpu", cpu_workers=0)


def test_small_passes_give_the_same_scores(scorer):
    from tests.phantoms import phantom_volume

    volumes = [phantom_volume(31), phantom_volume(32, "ES")]
    small = Scorer(device="cpu", batch_slices=3)
    for a, b in zip(scorer.score_batch(volumes), small.score_batch(volumes), strict=True):
        assert (a.pgt != b.pgt).mean() < 1e-4
        for x, y in zip(a.score.structures, b.score.structures, strict=True):
            assert x.pdsc == pytest.approx(y.pdsc, abs=1e-3) and x.flag == y.flag
