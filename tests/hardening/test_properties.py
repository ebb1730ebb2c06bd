"""Property-based tests (hypothesis): the loader refuses any hostile bytes or header only with
``InvalidMask``, and the model-space transform keeps random ellipse masks at random spacings.
"""

from __future__ import annotations

import gzip
import io
import tempfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.errors import InvalidMask
from monitor.io.nifti import Limits, MaskVolume, load_mask
from monitor.model.preprocess import from_model_space, one_hot, to_model_space
from monitor.qc.labels import ACDC
from monitor.qc.metrics import dice

_SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
#: Small limits so that a random header that passes them is cheap to read.
_LIMITS = Limits(max_voxels=2**20, max_dim=512, max_header_bytes=2**16)


def _load(data: bytes, suffix: str) -> MaskVolume | None:
    """``load_mask`` on ``data`` in a temporary file; None when refused with ``InvalidMask``."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"case{suffix}"
        path.write_bytes(data)
        try:
            volume = load_mask(path, ACDC, _LIMITS)
        except InvalidMask as exc:
            assert exc.reason and exc.reason.isidentifier(), exc
            return None
    assert volume.labels.dtype == np.uint8 and volume.labels.ndim == 3
    assert all(np.isfinite(s) and s > 0 for s in volume.spacing_mm)
    return volume


def _valid_nii() -> bytes:
    volume = np.zeros((16, 16, 3), np.uint8)
    volume[4:10, 4:10, :] = 3
    image = nib.Nifti1Image(volume, np.diag([1.5, 1.5, 8.0, 1.0]))
    raw = io.BytesIO()
    image.to_file_map(image.make_file_map({"image": raw, "header": raw}))
    return raw.getvalue()


_VALID = _valid_nii()


@_SETTINGS
@given(data=st.binary(max_size=2048), compressed=st.booleans())
def test_random_bytes_are_refused_with_invalid_mask(data: bytes, compressed: bool) -> None:
    _load(gzip.compress(data) if compressed else data, ".nii.gz" if compressed else ".nii")


@_SETTINGS
@given(
    patches=st.lists(
        st.tuples(st.integers(0, len(_VALID) - 1), st.binary(min_size=1, max_size=8)), min_size=1, max_size=12
    ),
    cut=st.one_of(st.none(), st.integers(0, len(_VALID))),
    compressed=st.booleans(),
)
def test_corrupted_headers_are_refused_with_invalid_mask(
    patches: list[tuple[int, bytes]], cut: int | None, compressed: bool
) -> None:
    """A valid file with random bytes written over random places (most land in the 352-byte header:
    dims, datatype, pixdim, vox_offset, extension flag) and possibly cut short."""
    blob = bytearray(_VALID)
    for offset, patch in patches:
        blob[offset : offset + len(patch)] = patch
    data = bytes(blob[:cut] if cut is not None else blob)
    _load(gzip.compress(data) if compressed else data, ".nii.gz" if compressed else ".nii")


_FIELDS = {
    "dim": st.lists(st.integers(-(2**15), 2**15 - 1), min_size=8, max_size=8),
    "pixdim": st.lists(st.floats(allow_nan=True, allow_infinity=True, width=32), min_size=8, max_size=8),
    "datatype": st.sampled_from([0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 768, 1024, 1280, 1536, 2304, 7]),
    "vox_offset": st.floats(allow_nan=True, allow_infinity=True, width=32),
    "scl_slope": st.floats(allow_nan=True, allow_infinity=True, width=32),
    "scl_inter": st.floats(allow_nan=True, allow_infinity=True, width=32),
    "sform_code": st.integers(-5, 5),
    "qform_code": st.integers(-5, 5),
}


@_SETTINGS
@given(
    fields=st.fixed_dictionaries({}, optional=_FIELDS),
    extension=st.binary(min_size=4, max_size=40),
    compressed=st.booleans(),
)
def test_random_header_fields_are_refused_with_invalid_mask(
    fields: dict[str, object], extension: bytes, compressed: bool
) -> None:
    """Random values in the header fields that size, type and place the voxels."""
    header = nib.Nifti1Header(_VALID[:348], check=False)
    for key, value in fields.items():
        try:
            header[key] = value
        except (ValueError, OverflowError, TypeError):
            continue
    data = header.binaryblock + extension[:4] + extension[4:] + _VALID[352:]
    _load(gzip.compress(data) if compressed else data, ".nii.gz" if compressed else ".nii")


def _ellipse(
    shape_yx: tuple[int, int],
    centre_mm: tuple[float, float],
    radii_mm: tuple[float, float],
    spacing_yx: tuple[float, float],
) -> np.ndarray:
    y = (np.arange(shape_yx[0]) + 0.5) * spacing_yx[0] - centre_mm[0]
    x = (np.arange(shape_yx[1]) + 0.5) * spacing_yx[1] - centre_mm[1]
    return (y[:, None] / radii_mm[0]) ** 2 + (x[None, :] / radii_mm[1]) ** 2 <= 1.0


@st.composite
def _heart(draw: st.DrawFn) -> tuple[np.ndarray, tuple[float, float, float]]:
    """A short-axis stack of ellipses: LV blood pool, a myocardial ring around it, an RV beside it,
    at a random in-plane spacing (0.6-2.5 mm) and field of view (the heart well inside it)."""
    dy = draw(st.floats(0.6, 2.5))
    dx = draw(st.floats(0.6, 2.5)) if draw(st.booleans()) else dy
    dz = draw(st.floats(5.0, 10.0))
    fov_mm = draw(st.floats(180.0, 300.0))
    shape_yx = (int(fov_mm / dy), int(fov_mm / dx))
    n_slices = draw(st.integers(1, 4))
    lv_r = draw(st.floats(16.0, 28.0))
    wall = draw(st.floats(6.0, 11.0))
    centre = (fov_mm / 2 + draw(st.floats(-25, 25)), fov_mm / 2 + draw(st.floats(-25, 25)))
    labels = np.zeros((n_slices, *shape_yx), np.uint8)
    for z in range(n_slices):
        shrink = 1.0 - 0.1 * z
        rv_centre = (centre[0] - 5, centre[1] - (lv_r + wall) * shrink - 14)
        labels[z][_ellipse(shape_yx, rv_centre, (30 * shrink, 16 * shrink), (dy, dx))] = 1
        labels[z][_ellipse(shape_yx, centre, ((lv_r + wall) * shrink,) * 2, (dy, dx))] = 2
        labels[z][_ellipse(shape_yx, centre, (lv_r * shrink,) * 2, (dy, dx))] = 3
    return labels, (dz, dy, dx)


#: Smallest per-structure Dice after the round trip (the myocardium is the thinnest structure).
_DICE_BOUND = {1: 0.93, 2: 0.90, 3: 0.95}


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(heart=_heart())
def test_round_trip_keeps_every_structure(heart: tuple[np.ndarray, tuple[float, float, float]]) -> None:
    labels, spacing = heart
    model, info = to_model_space(labels, spacing)
    back = from_model_space(one_hot(model), info)
    assert back.shape == labels.shape
    for structure, bound in _DICE_BOUND.items():
        value = dice(back == structure, labels == structure)
        assert value >= bound, (structure, value, spacing, labels.shape)


@pytest.mark.parametrize("spacing", [(8.0, 0.6, 0.6), (8.0, 2.5, 2.5), (8.0, 0.7, 2.2)])
def test_round_trip_extreme_spacings(spacing: tuple[float, float, float]) -> None:
    """The corners of the property's spacing range, as fixed cases."""
    fov = 240.0
    shape = (int(fov / spacing[1]), int(fov / spacing[2]))
    labels = np.zeros((1, *shape), np.uint8)
    labels[0][_ellipse(shape, (120, 100), (30, 16), spacing[1:])] = 1
    labels[0][_ellipse(shape, (120, 140), (28, 28), spacing[1:])] = 2
    labels[0][_ellipse(shape, (120, 140), (20, 20), spacing[1:])] = 3
    model, info = to_model_space(labels, spacing)
    back = from_model_space(one_hot(model), info)
    for structure, bound in _DICE_BOUND.items():
        assert dice(back == structure, labels == structure) >= bound
