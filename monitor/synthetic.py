"""Synthetic cardiac phantoms and graded segmentation failures (for tests, benchmarks and the demo).

A phantom is a short-axis stack of label slices that looks like an ACDC ground-truth mask: an elliptic
LV blood pool (label 3) inside a myocardial ring (label 2), and a crescent-shaped RV cavity (label 1)
that hugs the septal side of the ring, all tapering from base (slice 0) to apex (last slice). The ES
phantom of a patient shares the ED geometry with a smaller LV cavity, a thicker wall, a smaller RV and a
descended base. Simulated segmenters corrupt a label volume in graded, recorded ways (boundary noise,
erosion and dilation, holes, spurious blobs, missing slices, missing structures, label swaps), and
``write_dataset`` lays out phantoms and corrupted predictions exactly like the ``acdc-dev`` tree.

All arrays are ``[z, y, x]`` with canonical labels (0 BG, 1 RV, 2 MYO, 3 LV); spacing is ``(dz, dy, dx)``
in mm; affines are for nibabel's (x, y, z) voxel order. Everything is deterministic given the generator.
In-plane angles are measured in the array's (y, x) plane: 0 deg points to +x, 90 deg to +y.
"""

from __future__ import annotations

import csv
import math
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path

import numpy as np
from scipy import ndimage

from monitor.labels import ACDC, CANONICAL_CHANNEL, STRUCTURES, Structure
from monitor.metrics import dice, hausdorff_mm, volume_ml
from monitor.nifti import save_labels

__all__ = [
    "DEFAULT_SEGMENTERS",
    "METRICS_COLUMNS",
    "SEGMENTERS",
    "DatasetSummary",
    "Phantom",
    "PhantomGeometry",
    "SimulatedSegmenter",
    "add_spurious_blobs",
    "dilate_structure",
    "drop_slices",
    "erode_structure",
    "make_image",
    "make_patient",
    "make_phantom",
    "perturb_boundaries",
    "punch_holes",
    "remove_structure",
    "render_phantom",
    "sample_geometry",
    "swap_labels",
    "write_dataset",
]

Spacing3 = tuple[float, float, float]
StructureLike = Structure | str

_RV, _MYO, _LV = (CANONICAL_CHANNEL[s] for s in (Structure.RV, Structure.MYO, Structure.LV))
# In-plane 4-connected structuring element that never reaches into neighbouring slices.
_CROSS_2D = ndimage.generate_binary_structure(2, 1)[None]


# --------------------------------------------------------------------------------------------------
# Phantoms
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class PhantomGeometry:
    """Shape parameters of one synthetic patient, shared by its ED and ES phantoms.

    Slice positions are in slice-index units along z (slice 0 is the most basal slice); radii and
    widths are ED values at the base, in mm.
    """

    shape_yx: tuple[int, int]  #: in-plane grid (ny, nx) in voxels
    n_slices: int  #: number of short-axis slices
    spacing_mm: Spacing3  #: voxel size (dz, dy, dx) in mm; dy == dx
    centre_frac: tuple[float, float]  #: LV centre at the base as a fraction of the field of view (y, x)
    drift_mm: tuple[float, float]  #: in-plane shift (y, x) of the LV centre from base to apex, mm
    base_slice: float  #: z of the ED base plane (> 0 leaves slice 0 empty)
    apex_slice: float  #: z of the apex (< n_slices - 1 leaves the last slice empty)
    lv_radius_mm: float  #: ED endocardial radius (geometric mean of the semi-axes) at the base, mm
    lv_elongation: float  #: ratio of the endocardial semi-axes (>= 1)
    lv_orientation_deg: float  #: direction of the long in-plane axis of the LV ellipse, deg
    myo_thickness_mm: float  #: ED wall thickness at the base, mm
    taper_power: float  #: outer radius follows sqrt(1 - h**p) from base (h=0) to apex (h=1)
    rv_angle_deg: float  #: direction from the LV centre to the middle of the RV at the base, deg
    rv_twist_deg: float  #: change of that direction from base to apex, deg
    rv_width_mm: float  #: largest ED RV cavity width (radial, from the epicardium), mm
    rv_span_deg: tuple[float, float]  #: angular half-spans of the RV on either side of its middle, deg
    rv_skew: float  #: tilt of the RV width profile towards one horn (-0.5..0.5; 0 = symmetric)
    rv_extent: float  #: fraction of the base-apex distance at which the RV vanishes (> 1 reaches apex)
    basal_rv: bool  #: whether the most basal ED slice shows the RV
    basal_gap_deg: float  #: open sector of the basal myocardial ring (outflow tract), deg; 0 = closed
    basal_gap_angle_deg: float  #: direction of that sector, deg
    es_lv_reduction: float  #: fraction by which the LV cavity volume shrinks from ED to ES
    es_rv_scale: float  #: ES / ED factor of the RV width
    es_base_descent: float  #: fraction of the long axis by which the base descends at ES
    es_apex_rise: float  #: slices by which the apex rises at ES
    es_basal_rv: bool  #: whether the most basal ES slice shows the RV
    detail_seed: int  #: seed of the smooth contour irregularities

    @property
    def affine(self) -> np.ndarray:
        """4x4 voxel-to-world affine for nibabel's (x, y, z) order: diag(dx, dy, dz, 1)."""
        dz, dy, dx = self.spacing_mm
        return np.diag([dx, dy, dz, 1.0])


@dataclass(frozen=True, slots=True, kw_only=True)
class Phantom:
    """A synthetic ground-truth mask of one cardiac phase."""

    labels: np.ndarray  #: uint8 [z, y, x], canonical labels (0 BG, 1 RV, 2 MYO, 3 LV)
    spacing_mm: Spacing3  #: voxel size (dz, dy, dx) in mm
    affine: np.ndarray  #: 4x4 affine for nibabel's (x, y, z) voxel order, diag(dx, dy, dz, 1)
    phase: str  #: "ED" or "ES"
    geometry: PhantomGeometry  #: the parameters it was rendered from

    @property
    def shape(self) -> tuple[int, int, int]:
        """Array shape [z, y, x] in voxels."""
        return tuple(int(n) for n in self.labels.shape)  # type: ignore[return-value]


def sample_geometry(rng: np.random.Generator, **overrides: object) -> PhantomGeometry:
    """Draw the shape parameters of one synthetic patient.

    Ranges follow ACDC: 180-260 voxels in-plane at 1.3-1.8 mm, 6-14 slices of 5-10 mm, ED LV radius
    20-30 mm, wall 6-11 mm, RV on the septal side (to -x, within about 60 deg), ES LV cavity 30-60 %
    smaller than ED.

    Args:
        rng: random generator; the same state gives the same geometry.
        overrides: ``PhantomGeometry`` fields to set instead of drawing them (e.g. ``n_slices=8``).
    Returns: the geometry.
    Raises: TypeError for an unknown field name; ValueError for ``n_slices`` below 1.
    """
    unknown = set(overrides) - {f.name for f in fields(PhantomGeometry)}
    if unknown:
        raise TypeError(f"unknown PhantomGeometry fields {sorted(unknown)}")
    u = rng.uniform
    dz = float(rng.choice([5.0, 6.0, 7.0, 8.0, 10.0], p=[0.15, 0.1, 0.15, 0.2, 0.4]))
    length_mm = u(65.0, 100.0)
    n_slices = int(np.clip(round(length_mm / dz) + 1, 6, 14))
    n_slices = int(overrides.get("n_slices", n_slices))  # base and apex are placed relative to it
    if n_slices < 1:
        raise ValueError(f"n_slices must be at least 1, got {n_slices}")
    d_inplane = round(u(1.3, 1.8), 4)
    first_empty = rng.random() < 0.05
    last_empty = rng.random() < 0.08
    drift_angle = u(0, 2 * np.pi)
    drift = u(0.0, 10.0)
    geometry = PhantomGeometry(
        shape_yx=(2 * int(rng.integers(90, 131)), 2 * int(rng.integers(90, 131))),
        n_slices=n_slices,
        spacing_mm=(dz, d_inplane, d_inplane),
        centre_frac=(u(0.4, 0.6), u(0.4, 0.6)),
        drift_mm=(drift * math.sin(drift_angle), drift * math.cos(drift_angle)),
        base_slice=u(0.2, 0.6) if first_empty else -u(0.05, 0.7),
        apex_slice=n_slices - 1 - u(0.05, 0.5) if last_empty else n_slices - 1 + u(0.15, 0.9),
        lv_radius_mm=u(20.0, 30.0),
        lv_elongation=u(1.0, 1.25),
        lv_orientation_deg=u(0.0, 180.0),
        myo_thickness_mm=u(6.0, 11.0),
        taper_power=u(2.0, 4.0),
        rv_angle_deg=u(125.0, 235.0),
        rv_twist_deg=u(-20.0, 20.0),
        rv_width_mm=u(18.0, 38.0),
        rv_span_deg=(u(60.0, 100.0), u(60.0, 100.0)),
        rv_skew=u(-0.45, 0.45),
        rv_extent=u(0.75, 1.15),
        basal_rv=bool(rng.random() > 0.15),
        basal_gap_deg=u(50.0, 100.0) if rng.random() < 0.3 else 0.0,
        basal_gap_angle_deg=u(0.0, 360.0),
        es_lv_reduction=u(0.3, 0.6),
        es_rv_scale=u(0.6, 0.85),
        es_base_descent=u(0.0, 0.045),
        es_apex_rise=u(0.0, 0.6),
        es_basal_rv=bool(rng.random() > 0.5),
        detail_seed=int(rng.integers(0, 2**31)),
    )
    return replace(geometry, **overrides)  # type: ignore[arg-type]


def _harmonics(rng: np.random.Generator, scale: float) -> np.ndarray:
    """Random smooth 2π-periodic perturbation: complex coefficients c_k (k = 1..4), |c_k| ~ scale / k."""
    k = np.arange(1, 5, dtype=float)
    return rng.normal(0.0, scale, size=4) / k * np.exp(1j * rng.uniform(0.0, 2 * np.pi, size=4))


def _wave(unit: np.ndarray, coeffs: np.ndarray) -> np.ndarray:
    """Evaluate Re(sum_k c_k u**k) for u = exp(i theta): a smooth function of the angle theta."""
    power = unit
    out = (coeffs[0] * power).real
    for c in coeffs[1:]:
        power = power * unit
        out += (c * power).real
    return out


def _wrap(angle: np.ndarray) -> np.ndarray:
    """Wrap angles (radians) to [-pi, pi)."""
    return (angle + np.pi) % (2 * np.pi) - np.pi


def render_phantom(geometry: PhantomGeometry, phase: str = "ED") -> Phantom:
    """Rasterise a geometry at end-diastole or end-systole.

    Each slice is drawn in polar coordinates about the LV centre: endocardium (elliptic, with smooth
    irregularities), epicardium = endocardium + wall thickness, RV = a crescent between the epicardium
    and epicardium + RV width over an angular span on the septal side. ES keeps each slice's myocardial
    area (times 1 / (1 - base descent)) and shrinks the cavity so that its volume drops by about
    ``es_lv_reduction``.

    Args:
        geometry: parameters from ``sample_geometry``.
        phase: "ED" or "ES".
    Returns: the phantom, labels uint8 [z, y, x] canonical.
    Raises: ValueError for another phase.
    """
    if phase not in ("ED", "ES"):
        raise ValueError(f"phase must be 'ED' or 'ES', got {phase!r}")
    g = geometry
    es = phase == "ES"
    detail = np.random.default_rng(g.detail_seed)
    endo_waves = (_harmonics(detail, 0.06), _harmonics(detail, 0.06))  # base, apex
    wall_waves = (_harmonics(detail, 0.15), _harmonics(detail, 0.15))
    rv_waves = (_harmonics(detail, 0.12), _harmonics(detail, 0.12))
    jitter = detail.normal(0.0, 0.6, size=(g.n_slices, 2))  # mm, slice-to-slice centre jitter

    _, dy, dx = g.spacing_mm
    ny, nx = g.shape_yx
    labels = np.zeros((g.n_slices, ny, nx), dtype=np.uint8)
    centre0 = np.array([g.centre_frac[0] * ny * dy, g.centre_frac[1] * nx * dx])

    base, apex = g.base_slice, g.apex_slice
    if es:
        base = base + g.es_base_descent * (apex - base)
        apex = apex - g.es_apex_rise
    # ES cavity area factor per level and myocardial area factor (incompressible wall, shorter axis).
    length_factor = (apex - base) / (g.apex_slice - g.base_slice)
    area_factor = (1.0 - g.es_lv_reduction) / length_factor if es else 1.0
    myo_factor = 1.0 / length_factor if es else 1.0
    rv_scale = g.es_rv_scale if es else 1.0
    r_epi0 = g.lv_radius_mm + g.myo_thickness_mm
    e = math.sqrt(g.lv_elongation)
    occupied = [z for z in range(g.n_slices) if 0.0 <= (z - base) / (apex - base) < 1.0]
    first = occupied[0] if occupied else -1

    for z in occupied:
        h = (z - base) / (apex - base)  # 0 at the base plane, 1 at the apex
        taper = 0.3 + 0.7 * math.sqrt(max(1.0 - h**g.taper_power, 0.0))  # truncated dome
        r_epi_ed = r_epi0 * taper
        thick_ed = min(g.myo_thickness_mm * (0.9 + 0.3 * h), r_epi_ed)
        r_endo_ed = r_epi_ed - thick_ed
        r_endo = r_endo_ed * math.sqrt(area_factor)
        r_epi = math.sqrt(r_endo**2 + (r_epi_ed**2 - r_endo_ed**2) * myo_factor)
        rv_q = max(1.0 - (h / g.rv_extent) ** 2, 0.0) ** 0.5
        rv_width = g.rv_width_mm * rv_scale * rv_q

        # Work in a window that surely holds this slice's heart (waves are clipped below).
        centre = centre0 + np.asarray(g.drift_mm) * h + jitter[z]
        reach = 1.3 * e * r_endo + 1.5 * (r_epi - r_endo) + 1.5 * (1 + abs(g.rv_skew)) * rv_width + 2 * dx
        y0, y1 = max(int((centre[0] - reach) / dy), 0), min(int((centre[0] + reach) / dy) + 2, ny)
        x0, x1 = max(int((centre[1] - reach) / dx), 0), min(int((centre[1] + reach) / dx) + 2, nx)
        if y0 >= y1 or x0 >= x1:
            continue
        view = labels[z, y0:y1, x0:x1]
        py = (np.arange(y0, y1, dtype=float) * dy - centre[0])[:, None]
        px = (np.arange(x0, x1, dtype=float) * dx - centre[1])[None, :]
        rho = np.hypot(py, px)
        theta = np.arctan2(py, px)
        unit = np.exp(1j * theta)

        # Endocardium: area-preserving ellipse with smooth irregularities, interpolated base -> apex.
        rel = theta - math.radians(g.lv_orientation_deg)
        ellipse = 1.0 / np.sqrt((np.cos(rel) / e) ** 2 + (np.sin(rel) * e) ** 2)
        endo_wave = _wave(unit, (1 - h) * endo_waves[0] + h * endo_waves[1])
        wall_wave = _wave(unit, (1 - h) * wall_waves[0] + h * wall_waves[1])
        endo = r_endo * ellipse * (1.0 + np.clip(endo_wave, -0.3, 0.3))
        epi = endo + (r_epi - r_endo) * np.clip(1.0 + wall_wave, 0.5, 1.5)
        if r_endo < 1.2 * dx:  # apical cap: myocardium only
            endo = np.zeros_like(endo)

        # RV crescent: width profile over the angular span, shrinking towards rv_extent.
        show_rv = rv_q > 0 and not (z == first and not (g.es_basal_rv if es else g.basal_rv))
        if show_rv:
            mid = math.radians(g.rv_angle_deg + g.rv_twist_deg * h)
            d_theta = _wrap(theta - mid)
            span_shrink = 0.55 + 0.45 * rv_q
            half_span = np.where(
                d_theta >= 0,
                math.radians(g.rv_span_deg[0]) * span_shrink,
                math.radians(g.rv_span_deg[1]) * span_shrink,
            )
            t = np.clip(d_theta / half_span, -1.0, 1.0)
            profile = (1.0 - t**2) ** 0.6 * (1.0 + g.rv_skew * t)
            rv_wave = _wave(unit, (1 - h) * rv_waves[0] + h * rv_waves[1])
            width = rv_width * profile * np.clip(1.0 + rv_wave, 0.5, 1.5)
            view[(rho < epi + width) & (width > 0.6 * dx)] = _RV
        view[rho < epi] = _MYO
        view[rho < endo] = _LV

        if z == first and g.basal_gap_deg > 0:
            gap = np.abs(_wrap(theta - math.radians(g.basal_gap_angle_deg))) < math.radians(
                g.basal_gap_deg / 2
            )
            view[gap & (view == _MYO)] = 0

    _keep_largest_rv_per_slice(labels)
    return Phantom(labels=labels, spacing_mm=g.spacing_mm, affine=g.affine, phase=phase, geometry=g)


def _keep_largest_rv_per_slice(labels: np.ndarray) -> None:
    """In place: clear RV specks cut off from the main RV region of their slice (rasterisation leftovers)."""
    rv = labels == _RV
    for z in np.flatnonzero(rv.any(axis=(1, 2))):
        components, n = ndimage.label(rv[z])
        if n > 1:
            sizes = np.bincount(components.ravel())
            sizes[0] = 0
            labels[z][(components > 0) & (components != int(np.argmax(sizes)))] = 0


def make_phantom(rng: np.random.Generator, *, phase: str = "ED", **overrides: object) -> Phantom:
    """Draw a geometry and render one phase of it.

    Args:
        rng: random generator (e.g. ``np.random.default_rng(seed)``).
        phase: "ED" or "ES".
        overrides: ``PhantomGeometry`` fields to fix, e.g. ``n_slices=10, rv_angle_deg=180``.
    Returns: a phantom with canonical labels [z, y, x].
    """
    return render_phantom(sample_geometry(rng, **overrides), phase)


def make_patient(rng: np.random.Generator, **overrides: object) -> tuple[Phantom, Phantom]:
    """Draw one geometry and render it at ED and ES (same grid, spacing and affine).

    Returns: ``(ed, es)``.
    """
    geometry = sample_geometry(rng, **overrides)
    return render_phantom(geometry, "ED"), render_phantom(geometry, "ES")


def make_image(labels: np.ndarray, rng: np.random.Generator, spacing_mm: Spacing3) -> np.ndarray:
    """Synthesise a cine-MR-like image for a label volume (for display, not for training).

    Bright blood pools, dark myocardium, a textured body with a bright fat rim and a dark lung
    region, slight blur, a smooth bias field and Rician noise.

    Args:
        labels: canonical labels uint8 [z, y, x].
        rng: random generator.
        spacing_mm: voxel size (dz, dy, dx) in mm.
    Returns: uint8 [z, y, x].
    """
    labels = _check_labels(labels)
    nz, ny, nx = labels.shape
    d = float(spacing_mm[1])
    yy, xx = np.mgrid[0:ny, 0:nx].astype(np.float32)
    cy, cx = ny / 2 + rng.normal(0, ny / 20), nx / 2 + rng.normal(0, nx / 20)
    ry, rx = ny * rng.uniform(0.38, 0.47), nx * rng.uniform(0.42, 0.5)
    body_r = np.hypot((yy - cy) / ry, (xx - cx) / rx)
    heart = labels.any(axis=0)
    hy, hx = ndimage.center_of_mass(heart) if heart.any() else (cy, cx)
    lung_angle = rng.uniform(-0.8, 0.8)  # lung lateral to the LV (+x side, away from the RV)
    ly, lx = hy + 45 / d * math.sin(lung_angle), hx + 45 / d * math.cos(lung_angle)
    lung = np.hypot((yy - ly) / (30 / d), (xx - lx) / (22 / d)) < 1

    # Background per slice: textured body, bright fat rim, dark lung, dark air outside.
    coarse = ndimage.gaussian_filter(rng.standard_normal((nz, ny // 4 + 2, nx // 4 + 2)), sigma=(0, 1, 1))
    texture = ndimage.zoom(coarse.astype(np.float32), (1, 4, 4), order=1)[:, :ny, :nx]
    texture /= texture.std() + 1e-6
    body = np.where(body_r < 1, 95.0, 3.0).astype(np.float32)
    body[(body_r > 0.9) & (body_r < 1)] = 190.0  # subcutaneous fat
    body[lung] = 18.0
    image = body[None] + np.where(body_r < 0.9, 25.0, 0.0).astype(np.float32)[None] * texture
    # Heart: bright blood pools, dark myocardium.
    intensity = np.array([0.0, 215.0, 60.0, 215.0], dtype=np.float32)
    image = np.where(labels > 0, intensity[np.minimum(labels, 3)], image)
    image = ndimage.gaussian_filter(image, sigma=(0, 0.8, 0.8))
    angle = rng.uniform(0, 2 * np.pi)
    ramp = math.cos(angle) * (xx / nx - 0.5) + math.sin(angle) * (yy / ny - 0.5)
    image *= np.exp(0.4 * ramp)[None]
    sigma = rng.uniform(5.0, 10.0)
    noise = rng.standard_normal((2, *image.shape), dtype=np.float32) * sigma
    image = np.hypot(image + noise[0], noise[1])  # Rician magnitude noise
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------------------------------
# Corruptions (pure: each returns a new array and leaves its input untouched)
# --------------------------------------------------------------------------------------------------


def _label_of(structure: StructureLike) -> int:
    """Canonical label value of a structure given as ``Structure`` or name ("LV", "RV", "MYO")."""
    try:
        return CANONICAL_CHANNEL[Structure(str(structure).upper())]
    except ValueError as exc:
        raise ValueError(f"unknown structure {structure!r}; expected one of LV, RV, MYO") from exc


def _check_labels(labels: np.ndarray) -> np.ndarray:
    arr = np.asarray(labels)
    if arr.ndim != 3:
        raise ValueError(f"expected a 3D label volume [z, y, x], got {arr.ndim}D")
    return arr.astype(np.uint8, copy=False)


def _heart_box(labels: np.ndarray, margin_px: int) -> tuple[slice, slice, slice]:
    """All slices, and the in-plane bounding box of the foreground grown by ``margin_px``."""
    fg = labels.any(axis=0)
    if not fg.any():
        return (slice(None), slice(0, 0), slice(0, 0))
    ys, xs = np.flatnonzero(fg.any(axis=1)), np.flatnonzero(fg.any(axis=0))
    ny, nx = fg.shape
    return (
        slice(None),
        slice(max(ys[0] - margin_px, 0), min(ys[-1] + margin_px + 1, ny)),
        slice(max(xs[0] - margin_px, 0), min(xs[-1] + margin_px + 1, nx)),
    )


def perturb_boundaries(
    labels: np.ndarray,
    rng: np.random.Generator,
    spacing_mm: Spacing3,
    *,
    amplitude_mm: float = 1.5,
    smoothness_mm: float = 10.0,
) -> np.ndarray:
    """Deform all contours with a smooth random in-plane displacement field (nearest-neighbour warp).

    Each slice gets its own field: Gaussian-filtered white noise with correlation length
    ``smoothness_mm``, scaled to an RMS displacement of ``amplitude_mm`` per axis.

    Args:
        labels: canonical labels uint8 [z, y, x].
        rng: random generator.
        spacing_mm: voxel size (dz, dy, dx) in mm.
        amplitude_mm: RMS displacement per in-plane axis, mm; 0 returns a copy.
        smoothness_mm: correlation length (Gaussian sigma) of the field, mm.
    Returns: uint8 [z, y, x].
    """
    labels = _check_labels(labels)
    out = labels.copy()
    if amplitude_mm <= 0 or not labels.any():
        return out
    _, dy, dx = spacing_mm
    box = _heart_box(labels, margin_px=math.ceil(4 * amplitude_mm / min(dy, dx)) + 2)
    crop = labels[box]
    nz, ny, nx = crop.shape
    sigma = (0.0, smoothness_mm / dy, smoothness_mm / dx)
    field = ndimage.gaussian_filter(rng.normal(0.0, 1.0, (2, nz, ny, nx)), sigma=(0.0, *sigma), mode="wrap")
    field /= field.std(axis=(2, 3), keepdims=True) + 1e-12
    zz, yy, xx = np.meshgrid(np.arange(nz), np.arange(ny), np.arange(nx), indexing="ij")
    coords = np.stack([zz, yy + field[0] * amplitude_mm / dy, xx + field[1] * amplitude_mm / dx])
    out[box] = ndimage.map_coordinates(crop, coords, order=0, mode="nearest")
    return out


def _edit_structure(
    labels: np.ndarray,
    structure: StructureLike,
    voxels: int,
    *,
    margin_px: int,
    edit: Callable[[np.ndarray, np.ndarray, np.ndarray, int], None],
) -> np.ndarray:
    """A copy of ``labels`` in which ``edit`` has changed the box around one structure.

    Args:
        labels: canonical labels uint8 [z, y, x].
        structure: LV, RV or MYO.
        voxels: depth of the change; 0 or less returns a copy unchanged.
        margin_px: in-plane margin of the box around the structure, pixels; the change must stay in it.
        edit: ``edit(mask, before, after, value)`` on the box: the structure's mask (bool), the input
            labels and the output labels (uint8, written in place), and the structure's label value.
    Returns: uint8 [z, y, x]; a copy when the structure is absent.
    Raises: ValueError for bad labels or an unknown structure.
    """
    labels = _check_labels(labels)
    value = _label_of(structure)
    out = labels.copy()
    mask = labels == value
    if voxels <= 0 or not mask.any():
        return out
    box = _heart_box(mask, margin_px=margin_px)
    edit(mask[box], labels[box], out[box], value)  # out[box] is a view: edits land in out
    return out


def erode_structure(labels: np.ndarray, structure: StructureLike, voxels: int) -> np.ndarray:
    """Shrink one structure in-plane by ``voxels``; freed voxels take the nearest other label.

    For example eroding the LV by 2 hands its rim to the myocardium (an endocardial contour drawn too
    far inside); eroding the RV hands its rim to the background or the myocardium.

    Args:
        labels: canonical labels uint8 [z, y, x].
        structure: LV, RV or MYO.
        voxels: erosion depth in voxels (4-connected, slice by slice); 0 returns a copy.
    Returns: uint8 [z, y, x].
    """

    def erode(mask: np.ndarray, before: np.ndarray, after: np.ndarray, value: int) -> None:
        kept = ndimage.binary_erosion(mask, structure=_CROSS_2D, iterations=voxels, border_value=1)
        freed = mask & ~kept
        # Nearest non-structure voxel of the same slice: a huge z spacing keeps the search in-plane.
        iz, iy, ix = ndimage.distance_transform_edt(
            mask, sampling=(1e6, 1.0, 1.0), return_distances=False, return_indices=True
        )
        after[freed] = before[iz[freed], iy[freed], ix[freed]]

    return _edit_structure(labels, structure, voxels, margin_px=2, edit=erode)


def dilate_structure(labels: np.ndarray, structure: StructureLike, voxels: int) -> np.ndarray:
    """Grow one structure in-plane by ``voxels`` over whatever lies next to it (any label).

    Args:
        labels: canonical labels uint8 [z, y, x].
        structure: LV, RV or MYO.
        voxels: dilation depth in voxels (4-connected, slice by slice); 0 returns a copy.
    Returns: uint8 [z, y, x].
    """

    def dilate(mask: np.ndarray, before: np.ndarray, after: np.ndarray, value: int) -> None:
        after[ndimage.binary_dilation(mask, structure=_CROSS_2D, iterations=voxels)] = value

    # a margin of voxels + 1: the grown mask stays inside the box
    return _edit_structure(labels, structure, voxels, margin_px=voxels + 1, edit=dilate)


def punch_holes(
    labels: np.ndarray,
    rng: np.random.Generator,
    spacing_mm: Spacing3,
    *,
    structure: StructureLike,
    n_holes: int = 3,
    radius_mm: float = 4.0,
) -> np.ndarray:
    """Set discs inside one structure to background, each on one slice (centres drawn inside it).

    Args:
        labels: canonical labels uint8 [z, y, x].
        rng: random generator.
        spacing_mm: voxel size (dz, dy, dx) in mm.
        structure: LV, RV or MYO.
        n_holes: number of discs.
        radius_mm: disc radius, mm; only voxels of ``structure`` are cleared.
    Returns: uint8 [z, y, x]; a copy when the structure is absent.
    """
    labels = _check_labels(labels)
    value = _label_of(structure)
    out = labels.copy()
    where = np.argwhere(labels == value)
    if n_holes <= 0 or len(where) == 0:
        return out
    _, dy, dx = spacing_mm
    ny, nx = labels.shape[1:]
    yy, xx = np.ogrid[0:ny, 0:nx]
    for z, y, x in where[rng.integers(0, len(where), size=n_holes)]:
        disc = ((yy - y) * dy) ** 2 + ((xx - x) * dx) ** 2 <= radius_mm**2
        out[z][disc & (out[z] == value)] = 0
    return out


def add_spurious_blobs(
    labels: np.ndarray,
    rng: np.random.Generator,
    spacing_mm: Spacing3,
    *,
    n_blobs: int = 2,
    radius_mm: float = 6.0,
    min_distance_mm: float = 40.0,
    structure: StructureLike | None = None,
) -> np.ndarray:
    """Paint small ellipsoidal blobs far from the heart (false positives elsewhere in the field of view).

    Centres are drawn on background voxels at least ``min_distance_mm`` (in-plane) from every
    foreground voxel of their slice (or anywhere when the field of view has no such voxel); each blob
    spans one to three slices.

    Args:
        labels: canonical labels uint8 [z, y, x].
        rng: random generator.
        spacing_mm: voxel size (dz, dy, dx) in mm.
        n_blobs: number of blobs.
        radius_mm: in-plane blob radius, mm (each blob gets 0.6-1.2 times it).
        min_distance_mm: smallest in-plane distance from the heart, mm.
        structure: label of the blobs; None draws, per blob, one of the structures present in
            ``labels`` (any of LV, RV, MYO when none is), so a removed structure stays missing.
    Returns: uint8 [z, y, x].
    """
    labels = _check_labels(labels)
    out = labels.copy()
    if n_blobs <= 0:
        return out
    nz, ny, nx = labels.shape
    _, dy, dx = spacing_mm
    fg = labels.any(axis=0)
    if fg.any():
        far = ndimage.distance_transform_edt(~fg, sampling=(dy, dx)) >= min_distance_mm
        candidates = np.argwhere(far)
    else:
        candidates = np.empty((0, 2), dtype=int)
    if len(candidates) == 0:
        candidates = np.argwhere(np.ones((ny, nx), dtype=bool))
    present = [v for v in (_RV, _MYO, _LV) if (labels == v).any()] or [_RV, _MYO, _LV]
    yy, xx = np.ogrid[0:ny, 0:nx]
    for _ in range(n_blobs):
        y, x = candidates[rng.integers(len(candidates))]
        z0 = int(rng.integers(nz))
        depth = int(rng.integers(1, 4))
        value = _label_of(structure) if structure is not None else present[int(rng.integers(len(present)))]
        ry, rx = radius_mm * rng.uniform(0.6, 1.2, size=2)
        blob = ((yy - y) * dy / ry) ** 2 + ((xx - x) * dx / rx) ** 2 <= 1.0
        for z in range(z0, min(z0 + depth, nz)):
            out[z][blob & (out[z] == 0)] = value
    return out


def drop_slices(
    labels: np.ndarray, slices: Sequence[int], structure: StructureLike | None = None
) -> np.ndarray:
    """Erase one structure (or every structure) on the given slices.

    Args:
        labels: canonical labels uint8 [z, y, x].
        slices: z indices to erase.
        structure: LV, RV or MYO; None clears the whole slice.
    Returns: uint8 [z, y, x].
    """
    labels = _check_labels(labels)
    out = labels.copy()
    idx = np.asarray(list(slices), dtype=int)
    if idx.size == 0:
        return out
    if structure is None:
        out[idx] = 0
    else:
        part = out[idx]
        part[part == _label_of(structure)] = 0
        out[idx] = part
    return out


def remove_structure(labels: np.ndarray, structure: StructureLike) -> np.ndarray:
    """Erase one structure everywhere (a missing structure); its voxels become background.

    Returns: uint8 [z, y, x] with no voxel of ``structure``.
    """
    labels = _check_labels(labels)
    out = labels.copy()
    out[labels == _label_of(structure)] = 0
    return out


def swap_labels(
    labels: np.ndarray, a: StructureLike, b: StructureLike, slices: Sequence[int] | None = None
) -> np.ndarray:
    """Exchange the labels of two structures (e.g. LV <-> RV), on all slices or the given ones.

    Returns: uint8 [z, y, x].
    """
    labels = _check_labels(labels)
    va, vb = _label_of(a), _label_of(b)
    lut = np.arange(256, dtype=np.uint8)
    lut[va], lut[vb] = vb, va
    out = labels.copy()
    idx = slice(None) if slices is None else np.asarray(list(slices), dtype=int)
    out[idx] = lut[labels[idx]]
    return out


# --------------------------------------------------------------------------------------------------
# Simulated segmenters
# --------------------------------------------------------------------------------------------------

SegmenterFn = Callable[[np.ndarray, np.random.Generator, Spacing3], tuple[np.ndarray, str]]


@dataclass(frozen=True, slots=True, kw_only=True)
class SimulatedSegmenter:
    """A named recipe of corruptions of graded severity.

    Calling it with ``(labels, rng, spacing_mm)`` returns ``(corrupted labels, description)``; the
    description (``op=params;...``, no commas) is what metrics.csv stores as ``perturbation``.
    """

    name: str  #: folder name under ``predictions/``
    summary: str  #: one line on what it does
    apply: SegmenterFn  #: the recipe

    def __call__(
        self, labels: np.ndarray, rng: np.random.Generator, spacing_mm: Spacing3
    ) -> tuple[np.ndarray, str]:
        return self.apply(_check_labels(labels), rng, spacing_mm)


def _present(labels: np.ndarray) -> list[Structure]:
    counts = np.bincount(labels.ravel(), minlength=4)
    return [s for s in STRUCTURES if counts[CANONICAL_CHANNEL[s]] > 0]


def _slices_with(labels: np.ndarray, structure: StructureLike | None = None) -> np.ndarray:
    mask = labels > 0 if structure is None else labels == _label_of(structure)
    return np.flatnonzero(mask.any(axis=(1, 2)))


def _pick(rng: np.random.Generator, options: Sequence[Structure]) -> Structure:
    return options[int(rng.integers(len(options)))]


def _fmt_slices(slices: Sequence[int]) -> str:
    return "+".join(str(int(z)) for z in slices)


def _noise(
    labels: np.ndarray, rng: np.random.Generator, spacing: Spacing3, lo: float, hi: float, steps: list[str]
) -> np.ndarray:
    """Boundary noise with an RMS displacement drawn from [lo, hi] mm."""
    amplitude = float(rng.uniform(lo, hi))
    steps.append(f"noise={amplitude:.2f}mm")
    return perturb_boundaries(
        labels, rng, spacing, amplitude_mm=amplitude, smoothness_mm=float(rng.uniform(6, 12))
    )


def _resize(labels: np.ndarray, rng: np.random.Generator, max_voxels: int, steps: list[str]) -> np.ndarray:
    """Erode or dilate one present structure by 1..max_voxels."""
    structure = _pick(rng, _present(labels) or list(STRUCTURES))
    k = int(rng.integers(1, max_voxels + 1))
    if rng.random() < 0.5:
        steps.append(f"erode={structure}:{k}")
        return erode_structure(labels, structure, k)
    steps.append(f"dilate={structure}:{k}")
    return dilate_structure(labels, structure, k)


def _drop(
    labels: np.ndarray, rng: np.random.Generator, n: int, steps: list[str], *, ends_only: bool, whole: bool
) -> np.ndarray:
    """Erase one structure (or whole slices) on up to n occupied slices (basal/apical only if ends_only)."""
    structure = None if whole else _pick(rng, _present(labels) or list(STRUCTURES))
    candidates = _slices_with(labels, structure)
    if ends_only:
        candidates = candidates[[0, -1]] if len(candidates) > 1 else candidates
    if len(candidates) == 0:
        return labels
    chosen = np.sort(rng.choice(candidates, size=min(n, len(candidates)), replace=False))
    steps.append(f"drop_slices={structure or 'ALL'}:{_fmt_slices(chosen)}")
    return drop_slices(labels, chosen, structure)


def _segment_good(labels: np.ndarray, rng: np.random.Generator, spacing: Spacing3) -> tuple[np.ndarray, str]:
    steps: list[str] = []
    out = _noise(labels, rng, spacing, 0.6, 1.1, steps)
    if rng.random() < 0.3:
        out = _resize(out, rng, 1, steps)
    return out, ";".join(steps)


def _segment_fair(labels: np.ndarray, rng: np.random.Generator, spacing: Spacing3) -> tuple[np.ndarray, str]:
    steps: list[str] = []
    out = _noise(labels, rng, spacing, 1.2, 2.0, steps)
    out = _resize(out, rng, 2, steps)
    if rng.random() < 0.5:
        out = _drop(out, rng, 1, steps, ends_only=True, whole=False)
    if rng.random() < 0.3:
        structure = _pick(rng, [Structure.LV, Structure.RV])
        steps.append(f"holes={structure}:2x4mm")
        out = punch_holes(out, rng, spacing, structure=structure, n_holes=2, radius_mm=4.0)
    return out, ";".join(steps)


def _segment_poor(labels: np.ndarray, rng: np.random.Generator, spacing: Spacing3) -> tuple[np.ndarray, str]:
    steps: list[str] = []
    out = _noise(labels, rng, spacing, 2.5, 3.5, steps)
    for _ in range(int(rng.integers(1, 3))):
        out = _resize(out, rng, 3, steps)
    out = _drop(out, rng, int(rng.integers(1, 4)), steps, ends_only=False, whole=rng.random() < 0.3)
    if rng.random() < 0.6:
        n = int(rng.integers(1, 4))
        steps.append(f"blobs={n}")
        out = add_spurious_blobs(out, rng, spacing, n_blobs=n, radius_mm=float(rng.uniform(4, 9)))
    if rng.random() < 0.5:
        structure = _pick(rng, [Structure.LV, Structure.RV, Structure.MYO])
        steps.append(f"holes={structure}:4x5mm")
        out = punch_holes(out, rng, spacing, structure=structure, n_holes=4, radius_mm=5.0)
    if rng.random() < 0.3:
        both = np.intersect1d(_slices_with(out, Structure.LV), _slices_with(out, Structure.RV))
        if len(both):
            chosen = np.sort(rng.choice(both, size=min(2, len(both)), replace=False))
            steps.append(f"swap=LV-RV:{_fmt_slices(chosen)}")
            out = swap_labels(out, Structure.LV, Structure.RV, chosen)
    return out, ";".join(steps)


def _segment_failing(
    labels: np.ndarray, rng: np.random.Generator, spacing: Spacing3
) -> tuple[np.ndarray, str]:
    steps: list[str] = []
    out = _noise(labels, rng, spacing, 3.0, 5.0, steps)
    mode = rng.choice(["missing", "swap", "slices", "shrink"], p=[0.5, 0.2, 0.15, 0.15])
    if mode == "missing":
        structure = STRUCTURES[int(rng.choice(3, p=[0.25, 0.5, 0.25]))]
        steps.append(f"missing={structure}")
        out = remove_structure(out, structure)
    elif mode == "swap":
        both = np.intersect1d(_slices_with(out, Structure.LV), _slices_with(out, Structure.RV))
        chosen = (
            np.sort(rng.choice(both, size=max(len(both) * 3 // 4, 1), replace=False)) if len(both) else both
        )
        steps.append(f"swap=LV-RV:{_fmt_slices(chosen)}")
        out = swap_labels(out, Structure.LV, Structure.RV, chosen)
    elif mode == "slices":
        occupied = _slices_with(out)
        chosen = np.sort(rng.choice(occupied, size=(len(occupied) + 1) // 2, replace=False))
        steps.append(f"drop_slices=ALL:{_fmt_slices(chosen)}")
        out = drop_slices(out, chosen)
    else:
        structure = _pick(rng, [Structure.LV, Structure.RV])
        steps.append(f"erode={structure}:6;dilate=MYO:2")
        out = dilate_structure(erode_structure(out, structure, 6), Structure.MYO, 2)
    out = _resize(out, rng, 3, steps)
    n = int(rng.integers(2, 5))
    steps.append(f"blobs={n}")
    out = add_spurious_blobs(out, rng, spacing, n_blobs=n, radius_mm=float(rng.uniform(5, 12)))
    return out, ";".join(steps)


#: Simulated segmenters by name, best first.
SEGMENTERS: dict[str, SimulatedSegmenter] = {
    s.name: s
    for s in (
        SimulatedSegmenter(
            name="good",
            summary="sub-voxel smooth boundary noise, sometimes a 1-voxel erosion or dilation",
            apply=_segment_good,
        ),
        SimulatedSegmenter(
            name="fair",
            summary="1-2 mm boundary noise, 1-2 voxel erosion/dilation, maybe a missed end slice or holes",
            apply=_segment_fair,
        ),
        SimulatedSegmenter(
            name="poor",
            summary="3 mm boundary noise, up to 3-voxel erosion/dilation, missed slices, blobs, holes, swaps",
            apply=_segment_poor,
        ),
        SimulatedSegmenter(
            name="failing",
            summary="heavy noise plus a missing structure (half the cases), LV/RV swap, lost slices or "
            "collapsed cavity, and blobs",
            apply=_segment_failing,
        ),
    )
}
#: Segmenters written by ``write_dataset`` by default.
DEFAULT_SEGMENTERS: tuple[str, ...] = tuple(SEGMENTERS)


# --------------------------------------------------------------------------------------------------
# Dataset writer
# --------------------------------------------------------------------------------------------------

#: Columns of ``predictions/<segmenter>/metrics.csv`` (the same as the acdc-dev tree).
METRICS_COLUMNS: tuple[str, ...] = (
    "patient",
    "phase",
    "frame",
    "group",
    "ssl4mis_split",
    "pred_file",
    "gt_file",
    "slice_thickness_mm",
    "dice_lv",
    "dice_rv",
    "dice_myo",
    "dice_mean",
    "hd_lv_mm",
    "hd_rv_mm",
    "hd_myo_mm",
    "gt_lv_ml",
    "pred_lv_ml",
    "gt_rv_ml",
    "pred_rv_ml",
    "gt_myo_ml",
    "pred_myo_ml",
    "gt_lv_ef_pct",
    "pred_lv_ef_pct",
    "pred_missing_structures",
    "perturbation",
)
_GROUP = "SYN"
_SPLIT = "synthetic"


@dataclass(frozen=True, slots=True, kw_only=True)
class DatasetSummary:
    """What ``write_dataset`` wrote."""

    out_dir: Path  #: root of the tree (holds ``gt/`` and ``predictions/``)
    patients: tuple[str, ...]  #: patient ids, e.g. ("patient001", ...)
    segmenters: tuple[str, ...]  #: prediction folders written
    n_volumes: int  #: ground-truth volumes (patients x 2 phases)
    metrics_files: dict[str, Path]  #: segmenter -> its metrics.csv
    mean_dice: dict[str, float]  #: segmenter -> mean of dice_mean over its volumes
    duration_s: float  #: wall time of the whole write, seconds


def _volume_seed(seed: int, *parts: str) -> np.random.Generator:
    """Generator keyed by the dataset seed and names, independent of which other items are written."""
    return np.random.default_rng([seed, *(zlib.crc32(p.encode()) for p in parts)])


def _dice_csv(pred: np.ndarray, ref: np.ndarray) -> float:
    """Dice as in acdc-dev metrics.csv: 1 when both masks are empty (``monitor.metrics.dice`` gives nan)."""
    value = dice(pred, ref)
    return 1.0 if math.isnan(value) else value


def _fmt(value: float | int | str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return str(value)
    return "" if not math.isfinite(value) else f"{value:.4f}"


def _ef(edv: float, esv: float) -> float:
    return 100.0 * (edv - esv) / edv if edv > 0 else float("nan")


def _compare(pred: np.ndarray, gt: np.ndarray, spacing: Spacing3) -> dict[str, float | str]:
    """Metric columns of one volume: Dice, HD (mm) and volumes (ml) per structure, missing structures."""
    row: dict[str, float | str] = {}
    missing = []
    for structure in STRUCTURES:
        key = structure.value.lower()
        p, g = pred == CANONICAL_CHANNEL[structure], gt == CANONICAL_CHANNEL[structure]
        row[f"dice_{key}"] = _dice_csv(p, g)
        row[f"hd_{key}_mm"] = hausdorff_mm(p, g, spacing)
        row[f"gt_{key}_ml"] = volume_ml(g, spacing)
        row[f"pred_{key}_ml"] = volume_ml(p, spacing)
        if not p.any():
            missing.append(structure.value)
    row["dice_mean"] = float(np.mean([row["dice_lv"], row["dice_rv"], row["dice_myo"]]))
    row["pred_missing_structures"] = " ".join(missing)
    return row


def write_dataset(
    out_dir: Path | str,
    *,
    patients: int = 10,
    seed: int = 0,
    segmenters: Sequence[str | SimulatedSegmenter] = DEFAULT_SEGMENTERS,
    images: bool = True,
) -> DatasetSummary:
    """Write synthetic patients and simulated predictions in the acdc-dev layout.

    Writes ``gt/patientNNN/patientNNN_frameFF_gt.nii.gz`` (ED frame 01, ES frame 09-16),
    ``gt/patientNNN/Info.cfg`` (``ED: 1`` / ``ES: <frame>`` / ``Group: SYN``), optionally the image
    ``gt/patientNNN/patientNNN_frameFF.nii.gz``, and for each segmenter
    ``predictions/<name>/patientNNN_{ED,ES}.nii.gz`` plus ``predictions/<name>/metrics.csv`` (columns
    ``METRICS_COLUMNS``; 4 decimals; nan written as an empty field; Dice 0 when exactly one mask is
    empty and 1 when both are; HD empty when either is). Labels are written with the ACDC map, affine
    diag(dx, dy, dz, 1). Existing files of the same names are replaced; nothing else is removed. Each
    patient and each (segmenter, patient, phase) draws from its own generator, so a patient's files do
    not depend on how many patients or which segmenters are written.

    Args:
        out_dir: root folder (created if needed).
        patients: number of patients, numbered patient001 upwards (1-999).
        seed: dataset seed.
        segmenters: names in ``SEGMENTERS`` or ``SimulatedSegmenter`` objects.
        images: also write synthetic MR-like images.
    Returns: a ``DatasetSummary``.
    Raises: ValueError for a patient count outside 1-999, an unknown or duplicate segmenter name.
    """
    start = time.perf_counter()
    if not 1 <= patients <= 999:
        raise ValueError(f"patients must be between 1 and 999, got {patients}")
    chosen: list[SimulatedSegmenter] = []
    for item in segmenters:
        if isinstance(item, SimulatedSegmenter):
            chosen.append(item)
        elif item in SEGMENTERS:
            chosen.append(SEGMENTERS[item])
        else:
            raise ValueError(f"unknown simulated segmenter {item!r}; known: {sorted(SEGMENTERS)}")
    names = [s.name for s in chosen]
    if len(set(names)) != len(names):
        raise ValueError(f"segmenter names must be unique, got {names}")

    root = Path(out_dir)
    gt_root = root / "gt"
    rows: dict[str, list[dict[str, float | str]]] = {name: [] for name in names}
    ids = tuple(f"patient{i:03d}" for i in range(1, patients + 1))
    for pid in ids:
        rng = _volume_seed(seed, "patient", pid)
        ed, es = make_patient(rng)
        frames = {"ED": 1, "ES": int(rng.integers(9, 17))}
        folder = gt_root / pid
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "Info.cfg").write_text(f"ED: {frames['ED']}\nES: {frames['ES']}\nGroup: {_GROUP}\n")
        patient_rows: dict[str, list[dict[str, float | str]]] = {name: [] for name in names}
        for phantom in (ed, es):
            frame = frames[phantom.phase]
            gt_rel = f"{pid}/{pid}_frame{frame:02d}_gt.nii.gz"
            save_labels(gt_root / gt_rel, phantom.labels, phantom.affine, label_map=ACDC)
            if images:
                image = make_image(
                    phantom.labels, _volume_seed(seed, "image", pid, phantom.phase), phantom.spacing_mm
                )
                save_labels(folder / f"{pid}_frame{frame:02d}.nii.gz", image, phantom.affine)
            for segmenter in chosen:
                vol_rng = _volume_seed(seed, segmenter.name, pid, phantom.phase)
                pred, description = segmenter(phantom.labels, vol_rng, phantom.spacing_mm)
                pred_name = f"{pid}_{phantom.phase}.nii.gz"
                save_labels(
                    root / "predictions" / segmenter.name / pred_name, pred, phantom.affine, label_map=ACDC
                )
                row: dict[str, float | str] = {
                    "patient": pid,
                    "phase": phantom.phase,
                    "frame": str(frame),
                    "group": _GROUP,
                    "ssl4mis_split": _SPLIT,
                    "pred_file": pred_name,
                    "gt_file": gt_rel,
                    "slice_thickness_mm": phantom.spacing_mm[0],
                    **_compare(pred, phantom.labels, phantom.spacing_mm),
                    "perturbation": description.replace(",", ";"),
                }
                patient_rows[segmenter.name].append(row)
        for name, (ed_row, es_row) in patient_rows.items():
            gt_ef = _ef(float(ed_row["gt_lv_ml"]), float(es_row["gt_lv_ml"]))
            pred_ef = _ef(float(ed_row["pred_lv_ml"]), float(es_row["pred_lv_ml"]))
            for row in (ed_row, es_row):
                row["gt_lv_ef_pct"], row["pred_lv_ef_pct"] = gt_ef, pred_ef
            rows[name].extend((ed_row, es_row))

    metrics_files: dict[str, Path] = {}
    for name, name_rows in rows.items():
        path = root / "predictions" / name / "metrics.csv"
        with path.open("w", newline="") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(METRICS_COLUMNS)
            for row in name_rows:
                writer.writerow([_fmt(row[column]) for column in METRICS_COLUMNS])
        metrics_files[name] = path
    return DatasetSummary(
        out_dir=root,
        patients=ids,
        segmenters=tuple(names),
        n_volumes=2 * patients,
        metrics_files=metrics_files,
        mean_dice={name: float(np.mean([float(r["dice_mean"]) for r in rows[name]])) for name in names},
        duration_s=time.perf_counter() - start,
    )
