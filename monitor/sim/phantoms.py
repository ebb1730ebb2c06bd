"""Synthetic cardiac phantoms: ACDC-like ground-truth masks (and MR-like images) of simulated patients.

A phantom is a short-axis stack of label slices that looks like an ACDC ground-truth mask: an elliptic
LV blood pool (label 3) inside a myocardial ring (label 2), and a crescent-shaped RV cavity (label 1)
that hugs the septal side of the ring, all tapering from base (slice 0) to apex (last slice). The ES
phantom of a patient shares the ED geometry with a smaller LV cavity, a thicker wall, a smaller RV and a
descended base.

All arrays are ``[z, y, x]`` with canonical labels (0 BG, 1 RV, 2 MYO, 3 LV); spacing is ``(dz, dy, dx)``
in mm; affines are for nibabel's (x, y, z) voxel order. Everything is deterministic given the generator.
In-plane angles are measured in the array's (y, x) plane: 0 deg points to +x, 90 deg to +y.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace

import numpy as np
from scipy import ndimage

from monitor.qc.labels import CANONICAL_CHANNEL, Structure
from monitor.typing import Shape3, Spacing3

__all__ = [
    "Phantom",
    "PhantomGeometry",
    "StructureLike",
    "as_label_volume",
    "label_value",
    "make_image",
    "make_patient",
    "make_phantom",
    "render_phantom",
    "sample_geometry",
]

#: A structure given as ``Structure`` or by name ("LV", "RV", "MYO").
StructureLike = Structure | str

_RV, _MYO, _LV = (CANONICAL_CHANNEL[s] for s in (Structure.RV, Structure.MYO, Structure.LV))


def label_value(structure: StructureLike) -> int:
    """Canonical label value of a structure given as ``Structure`` or name ("LV", "RV", "MYO").

    Raises: ValueError for another name.
    """
    try:
        return CANONICAL_CHANNEL[Structure(str(structure).upper())]
    except ValueError as exc:
        raise ValueError(f"unknown structure {structure!r}; expected one of LV, RV, MYO") from exc


def as_label_volume(labels: np.ndarray) -> np.ndarray:
    """``labels`` as uint8 [z, y, x] (no copy when it already is).

    Raises: ValueError when it is not 3D.
    """
    arr = np.asarray(labels)
    if arr.ndim != 3:
        raise ValueError(f"expected a 3D label volume [z, y, x], got {arr.ndim}D")
    return arr.astype(np.uint8, copy=False)


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
    def shape(self) -> Shape3:
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
    labels = as_label_volume(labels)
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
