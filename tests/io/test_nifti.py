"""Loading and validating masks: every refusal names its reason."""

from __future__ import annotations

import gzip

import nibabel as nib
import numpy as np
import pytest

from monitor.errors import InvalidMask
from monitor.io.nifti import Limits, load_mask, save_labels
from monitor.qc.labels import MNMS

AFFINE = np.diag([1.5, 1.25, 10.0, 1.0])  # (dx, dy, dz)


def _write(path, data, affine=AFFINE, dtype=None):
    img = nib.Nifti1Image(data if dtype is None else data.astype(dtype), affine)
    if dtype is not None:
        img.header.set_data_dtype(dtype)
    nib.save(img, str(path))
    return path


def _labels_xyz():
    data = np.zeros((40, 30, 5), dtype=np.uint8)  # (x, y, z)
    data[10:20, 5:15, 1:4] = 3
    data[8:22, 3:17, 1:4][data[8:22, 3:17, 1:4] == 0] = 2
    data[25:35, 5:15, 1:4] = 1
    return data


def test_loads_zyx_with_reversed_spacing(tmp_path):
    data = _labels_xyz()
    mask = load_mask(_write(tmp_path / "p_ED.nii.gz", data))
    assert mask.shape == (5, 30, 40)
    assert mask.spacing_mm == (10.0, 1.25, 1.5)
    assert np.array_equal(mask.labels, data.transpose(2, 1, 0))
    assert np.allclose(mask.affine, AFFINE)


def test_four_d_singleton_and_integral_floats_are_accepted(tmp_path):
    data = _labels_xyz()
    mask = load_mask(_write(tmp_path / "four.nii.gz", data[..., None], dtype=np.int16))
    assert mask.shape == (5, 30, 40)
    mask = load_mask(_write(tmp_path / "float.nii.gz", data.astype(np.float32), dtype=np.float32))
    assert mask.labels.max() == 3


def test_mnms_labels_become_canonical(tmp_path):
    data = _labels_xyz()  # written as if M&Ms: 1 LV, 2 MYO, 3 RV
    mask = load_mask(_write(tmp_path / "m.nii.gz", data), MNMS)
    assert np.array_equal(mask.labels == 3, data.transpose(2, 1, 0) == 1)


def test_save_labels_round_trip_keeps_affine_and_map(tmp_path):
    data = _labels_xyz()
    mask = load_mask(_write(tmp_path / "a.nii.gz", data), MNMS)
    out = save_labels(tmp_path / "out" / "pgt.nii.gz", mask.labels, mask.affine, MNMS)
    again = load_mask(out, MNMS)
    assert np.array_equal(again.labels, mask.labels)
    assert np.allclose(again.affine, mask.affine)
    assert np.array_equal(np.asanyarray(nib.load(out).dataobj), data)
    assert not list((tmp_path / "out").glob(".*"))  # no temp file left behind


def _truncated(tmp_path):
    path = _write(tmp_path / "full.nii.gz", _labels_xyz())
    raw = path.read_bytes()
    cut = tmp_path / "truncated.nii.gz"
    cut.write_bytes(raw[: len(raw) // 2])
    return cut


def _uncompressed_truncated(tmp_path):
    path = _write(tmp_path / "full.nii", _labels_xyz())
    raw = path.read_bytes()
    cut = tmp_path / "short.nii"
    cut.write_bytes(raw[:400])
    return cut


def _raw(path, content):
    path.write_bytes(content)
    return path


def _with_pixdim(path, index, value):
    img = nib.Nifti1Image(_labels_xyz(), None)
    img.header["pixdim"][index] = value
    img.header.set_qform(None, code=0)
    img.header.set_sform(None, code=0)
    nib.save(img, str(path))
    return path


CASES = {
    "empty-file": (lambda t: _raw(t / "e.nii.gz", b""), "empty_file"),
    "not-nifti": (lambda t: _raw(t / "x.nii.gz", gzip.compress(b"hello" * 100)), "not_nifti"),
    "plain-text": (lambda t: _raw(t / "y.nii", b"not an image at all" * 30), "not_nifti"),
    "wrong-suffix": (lambda t: _raw(t / "z.png", b"png"), "not_nifti"),
    "truncated-gzip": (_truncated, "corrupt"),
    "truncated-raw": (_uncompressed_truncated, "truncated"),
    "two-d": (lambda t: _write(t / "2d.nii.gz", np.zeros((40, 30), np.uint8)), "bad_ndim"),
    "five-d": (lambda t: _write(t / "5d.nii.gz", np.zeros((10, 10, 2, 2, 2), np.uint8)), "bad_ndim"),
    "four-d-cine": (lambda t: _write(t / "4d.nii.gz", np.zeros((10, 10, 2, 3), np.uint8)), "bad_ndim"),
    "slice-on-wrong-axis": (lambda t: _write(t / "thin.nii.gz", np.zeros((1, 30, 8), np.uint8)), "bad_shape"),
    "float-labels": (lambda t: _write(t / "f.nii.gz", _labels_xyz() * 0.5, dtype=np.float32), "float_labels"),
    "nan-labels": (
        lambda t: _write(t / "n.nii.gz", np.full((20, 20, 2), np.nan, np.float32), dtype=np.float32),
        "float_labels",
    ),
    "label-outside-map": (lambda t: _write(t / "o.nii.gz", _labels_xyz() + 1), "labels_outside_map"),
    "negative-labels": (
        lambda t: _write(t / "neg.nii.gz", _labels_xyz().astype(np.int16) - 1, dtype=np.int16),
        "labels_outside_map",
    ),
    "zero-spacing": (lambda t: _with_pixdim(t / "s0.nii.gz", 1, 0.0), "bad_spacing"),
    "negative-spacing": (lambda t: _with_pixdim(t / "sn.nii.gz", 3, -2.0), "bad_spacing"),
    "nan-spacing": (lambda t: _with_pixdim(t / "snan.nii.gz", 2, np.nan), "bad_spacing"),
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_refusals_carry_a_reason(tmp_path, case):
    make, reason = CASES[case]
    path = make(tmp_path)
    with pytest.raises(InvalidMask) as info:
        load_mask(path)
    assert info.value.reason == reason
    assert path.name in str(info.value)


def test_header_claiming_huge_volume_is_refused_before_reading(tmp_path):
    header = nib.Nifti1Header()
    header.set_data_shape((30_000, 30_000, 100))
    header.set_data_dtype(np.uint8)
    path = tmp_path / "huge.nii"
    with path.open("wb") as fh:
        fh.write(header.binaryblock)
        fh.write(b"\0" * 4)  # vox_offset padding, no voxel data at all
    with pytest.raises(InvalidMask) as info:
        load_mask(path, limits=Limits(max_dim=4096))
    assert info.value.reason == "too_large"


def test_limits_apply_to_voxels_and_bytes(tmp_path):
    path = _write(tmp_path / "a.nii.gz", _labels_xyz())
    with pytest.raises(InvalidMask, match="voxels exceed"):
        load_mask(path, limits=Limits(max_voxels=100))
    with pytest.raises(InvalidMask, match="bytes on disk"):
        load_mask(path, limits=Limits(max_file_bytes=10))


def test_missing_and_directory(tmp_path):
    with pytest.raises(InvalidMask) as info:
        load_mask(tmp_path / "gone.nii.gz")
    assert info.value.reason == "missing"
    folder = tmp_path / "dir.nii.gz"
    folder.mkdir()
    with pytest.raises(InvalidMask) as info:
        load_mask(folder)
    assert info.value.reason == "not_a_file"


def test_an_image_dropped_by_mistake_gets_a_short_clear_rejection(tmp_path):
    """An MR image (uint8, hundreds of grey values) where a mask was expected: one short sentence that
    says what it looks like (it listed every value, about 1 KB)."""
    from monitor.sim import make_patient
    from monitor.sim.phantoms import make_image

    ed, _ = make_patient(np.random.default_rng(3), n_slices=4, shape_yx=(96, 96))
    image = make_image(ed.labels, np.random.default_rng(4), ed.spacing_mm)  # uint8 [z, y, x]
    path = _write(tmp_path / "patient002_frame01_0000.nii.gz", image.transpose(2, 1, 0), ed.affine)
    with pytest.raises(InvalidMask) as caught:
        load_mask(path)
    assert caught.value.reason == "labels_outside_map"
    assert len(np.unique(image)) > 100
    assert len(caught.value.detail) < 200, caught.value.detail
    assert "an image rather than a label mask?" in caught.value.detail
    floats = _write(tmp_path / "float_image.nii.gz", image.transpose(2, 1, 0).astype(np.float32) / 7.0)
    with pytest.raises(InvalidMask, match="an image rather than a label mask") as caught:
        load_mask(floats)
    assert caught.value.reason == "float_labels" and len(caught.value.detail) < 200


def test_a_failed_write_leaves_no_temporary_file(tmp_path):
    """save_labels writes a temporary file, then renames it; a write that fails removes it."""
    from monitor.io.nifti import temporary_writer

    target = tmp_path / "000000" / "16_pgt.nii.gz"
    target.parent.mkdir()
    (target.parent / "blocker").mkdir()
    with pytest.raises(OSError):  # the rename onto a folder fails after the temporary file was written
        save_labels(target.parent / "blocker", np.zeros((2, 8, 8), np.uint8), AFFINE)
    assert sorted(p.name for p in target.parent.iterdir()) == ["blocker"]
    save_labels(target, np.zeros((2, 8, 8), np.uint8), AFFINE)
    assert sorted(p.name for p in target.parent.iterdir()) == ["16_pgt.nii.gz", "blocker"]
    assert temporary_writer(".16_pgt.nii.gz.4242.tmp.nii.gz") == 4242
    assert temporary_writer("16_pgt.nii.gz") is None and temporary_writer(".x.nii.gz.tmp") is None
