"""Tests of monitor/io/images.py and layouts.image_candidates: each pairing rule (sidecar ``image``, nnU-Net
``imagesTs`` and ``_0000`` beside the mask, ACDC frame beside its GT, a ground truth's folder for
``evaluate``), and every reason an image is not used (geometry, unreadable, too large, not finite, not
found, disabled)."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from monitor.io.identity import sidecar_image
from monitor.io.images import (
    IMAGE_DISABLED,
    IMAGE_GEOMETRY_MISMATCH,
    IMAGE_NOT_FOUND,
    IMAGE_UNREADABLE,
    pair_image,
)
from monitor.io.layouts import image_candidates
from monitor.io.nifti import Limits, MaskVolume, load_mask, save_labels
from tests.phantoms import phantom_volume

#: A small phantom: 6 slices of 64 x 64 (spacing drawn by the phantom's seed).
_SMALL = {"n_slices": 6, "shape_yx": (64, 64)}


def _phantom() -> MaskVolume:
    return phantom_volume(3, **_SMALL)


def _write_mask(path: Path) -> MaskVolume:
    volume = _phantom()
    save_labels(path, volume.labels, volume.affine)
    return load_mask(path)


def _write_image(path: Path, volume: MaskVolume, *, affine: np.ndarray | None = None, shape_zyx=None) -> Path:
    """An MR-like image (bright pools, dark myocardium) of ``volume``'s geometry, or of another."""
    data = np.where(volume.labels == 2, 60.0, np.where(volume.labels > 0, 215.0, 90.0)).astype(np.float32)
    if shape_zyx is not None:
        data = np.zeros(shape_zyx, dtype=np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(data.transpose(2, 1, 0), volume.affine if affine is None else affine), str(path))
    return path


def test_candidates_in_order() -> None:
    assert image_candidates("/ds/labelsTs/case_01.nii.gz", "/img/x.nii.gz") == [
        Path("/img/x.nii.gz"),  # the sidecar's
        Path("/ds/labelsTs/case_01_0000.nii.gz"),  # nnU-Net channel beside the mask
        Path("/ds/labelsTs/case_01_image.nii.gz"),
        Path("/ds/labelsTs/case_01_img.nii.gz"),
        Path("/ds/imagesTs/case_01_0000.nii.gz"),  # nnU-Net sibling folders
        Path("/ds/imagesTr/case_01_0000.nii.gz"),
    ]
    assert image_candidates("/d/patient001_frame01_gt.nii.gz")[0] == Path("/d/patient001_frame01.nii.gz")
    assert image_candidates("/ds/imagesTs/case_01.nii.gz")[-1] == Path("/ds/imagesTr/case_01_0000.nii.gz")
    assert image_candidates("/d/notes.txt", "/img/x.nii.gz") == [Path("/img/x.nii.gz")]


def test_sidecar_image_is_used(tmp_path: Path) -> None:
    mask = _write_mask(tmp_path / "watch" / "p101_ED.nii.gz")
    image = _write_image(tmp_path / "archive" / "scan_17.nii.gz", mask)
    (tmp_path / "watch" / "p101_ED.json").write_text(json.dumps({"image": "../archive/scan_17.nii.gz"}))

    named = sidecar_image(tmp_path / "watch" / "p101_ED.nii.gz")
    assert named == str(image.resolve())
    paired = pair_image(mask, image_path=named)
    assert paired.pairing.used and paired.pairing.reason is None
    assert paired.pairing.path == str(image.resolve())
    assert paired.data is not None and paired.data.shape == mask.shape and paired.data.dtype == np.float32
    assert paired.data[mask.labels == 2].max() == 60.0  # [z, y, x] like the mask


def test_sidecar_image_relative_to_the_mask(tmp_path: Path) -> None:
    mask = _write_mask(tmp_path / "p101_ED.nii.gz")
    _write_image(tmp_path / "images" / "p101.nii.gz", mask)
    paired = pair_image(mask, image_path="images/p101.nii.gz")
    assert paired.pairing.used and paired.pairing.path == str(tmp_path / "images" / "p101.nii.gz")


@pytest.mark.parametrize(
    ("mask_name", "image_name"),
    [
        ("labelsTs/case_01.nii.gz", "imagesTs/case_01_0000.nii.gz"),  # nnU-Net: a sibling folder
        ("predictions/case_01.nii.gz", "imagesTs/case_01_0000.nii.gz"),
        ("nnunet/case_01.nii.gz", "nnunet/case_01_0000.nii.gz"),  # nnU-Net: the same folder
        ("patient001/patient001_frame01_gt.nii.gz", "patient001/patient001_frame01.nii.gz"),  # ACDC
    ],
    ids=["imagesTs-labelsTs", "imagesTs-predictions", "same-folder", "acdc"],
)
def test_layout_rules(tmp_path: Path, mask_name: str, image_name: str) -> None:
    mask = _write_mask(tmp_path / mask_name)
    image = _write_image(tmp_path / image_name, mask)
    paired = pair_image(mask)
    assert paired.pairing.used, paired.pairing
    assert paired.pairing.path == str(image)


def test_ground_truth_folder_as_extra_candidates(tmp_path: Path) -> None:
    """``evaluate``: a prediction's image is the ACDC frame beside its ground truth."""
    gt = tmp_path / "gt" / "patient001" / "patient001_frame01_gt.nii.gz"
    _write_mask(gt)
    prediction = _write_mask(tmp_path / "preds" / "unet" / "patient001_frame01.nii.gz")
    image = _write_image(tmp_path / "gt" / "patient001" / "patient001_frame01.nii.gz", prediction)
    assert not pair_image(prediction).pairing.used
    paired = pair_image(prediction, candidates=image_candidates(gt))
    assert paired.pairing.used and paired.pairing.path == str(image)


def test_sidecar_image_comes_first(tmp_path: Path) -> None:
    mask = _write_mask(tmp_path / "case_01.nii.gz")
    _write_image(tmp_path / "case_01_0000.nii.gz", mask, shape_zyx=(6, 64, 32))  # wrong one beside
    chosen = _write_image(tmp_path / "archive" / "case_01.nii.gz", mask)
    paired = pair_image(mask, image_path=chosen)
    assert paired.pairing.used and paired.pairing.path == str(chosen)


def test_shape_mismatch_is_not_used(tmp_path: Path) -> None:
    mask = _write_mask(tmp_path / "case_01.nii.gz")
    _write_image(tmp_path / "case_01_0000.nii.gz", mask, shape_zyx=(5, 64, 64))
    paired = pair_image(mask)
    assert not paired.pairing.used and paired.data is None
    assert paired.pairing.reason == IMAGE_GEOMETRY_MISMATCH
    assert paired.pairing.path == str(tmp_path / "case_01_0000.nii.gz")
    assert paired.pairing.detail == "image shape [5, 64, 64] [z, y, x] differs from the mask's [6, 64, 64]"


def test_affine_mismatch_is_not_used_and_float32_rounding_is(tmp_path: Path) -> None:
    mask = _write_mask(tmp_path / "a" / "case_01.nii.gz")
    shifted = mask.affine.copy()
    shifted[0, 3] += 2.0  # 2 mm off in x
    _write_image(tmp_path / "a" / "case_01_0000.nii.gz", mask, affine=shifted)
    paired = pair_image(mask)
    assert paired.pairing.reason == IMAGE_GEOMETRY_MISMATCH
    assert (
        paired.pairing.detail is not None and "differs from the mask's by up to 2 mm" in paired.pairing.detail
    )

    resampled = mask.affine.copy()
    resampled[:3, :3] *= 1.25  # another spacing, same shape
    _write_image(tmp_path / "a" / "case_01_0000.nii.gz", mask, affine=resampled)
    detail = pair_image(mask).pairing.detail
    dz, dy, dx = mask.spacing_mm
    expected = (
        f"spacing ({1.25 * dz:.3g}, {1.25 * dy:.3g}, {1.25 * dx:.3g}) mm vs ({dz:.3g}, {dy:.3g}, {dx:.3g}) mm"
    )
    assert detail is not None and expected in detail

    rounded = mask.affine + 4e-6  # what a float32 header does to an affine
    _write_image(tmp_path / "a" / "case_01_0000.nii.gz", mask, affine=rounded)
    assert pair_image(mask).pairing.used


def test_unreadable_too_large_and_not_finite(tmp_path: Path) -> None:
    mask = _write_mask(tmp_path / "case_01.nii.gz")
    broken = tmp_path / "case_01_0000.nii.gz"
    broken.write_bytes(b"\x1f\x8b not really gzip")
    paired = pair_image(mask)
    assert paired.pairing.reason == IMAGE_UNREADABLE and paired.pairing.detail is not None
    assert paired.pairing.detail.startswith("corrupt: ")

    _write_image(broken, mask)
    too_small = Limits(max_voxels=1000)
    paired = pair_image(mask, limits=too_small)
    assert paired.pairing.reason == IMAGE_UNREADABLE
    assert paired.pairing.detail is not None and paired.pairing.detail.startswith("too_large: ")

    data = np.full(mask.shape[::-1], np.nan, dtype=np.float32)
    nib.save(nib.Nifti1Image(data, mask.affine), str(broken))
    paired = pair_image(mask)
    assert (paired.pairing.reason, paired.pairing.detail) == (
        IMAGE_UNREADABLE,
        "the image holds NaN or infinite values",
    )


def test_not_found_and_disabled(tmp_path: Path) -> None:
    mask = _write_mask(tmp_path / "case_01.nii.gz")
    alone = pair_image(mask).pairing
    assert (alone.used, alone.path, alone.reason, alone.detail) == (
        False,
        None,
        IMAGE_NOT_FOUND,
        "no MR image found",
    )
    gone = pair_image(mask, image_path="/nowhere/scan.nii.gz").pairing
    assert (gone.path, gone.reason) == ("/nowhere/scan.nii.gz", IMAGE_NOT_FOUND)
    assert gone.detail == "the image the sidecar names does not exist: /nowhere/scan.nii.gz"

    _write_image(tmp_path / "case_01_0000.nii.gz", mask)
    off = pair_image(mask, enabled=False)
    assert (off.pairing.used, off.pairing.reason, off.data) == (False, IMAGE_DISABLED, None)


def test_a_mask_in_memory_takes_the_named_image(tmp_path: Path) -> None:
    volume = _phantom()
    image = _write_image(tmp_path / "scan.nii.gz", volume)
    assert pair_image(volume, image_path=image).pairing.used
    assert pair_image(volume).pairing.reason == IMAGE_NOT_FOUND


def test_any_error_reading_the_image_makes_it_unreadable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever the reader raises (nibabel raises many types for garbage), scoring goes on without it."""
    import monitor.io.images as images

    mask = _write_mask(tmp_path / "case_01.nii.gz")
    _write_image(tmp_path / "case_01_0000.nii.gz", mask)

    def broken(path: Path, limits: Limits | None = None) -> None:
        raise KeyError("dim")

    monkeypatch.setattr(images, "read_image", broken)
    pairing = pair_image(mask).pairing
    assert (pairing.used, pairing.reason, pairing.detail) == (False, IMAGE_UNREADABLE, "KeyError")
