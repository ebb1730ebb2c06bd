"""Load and validate NIfTI label masks (and optional MR images); write label volumes.

The only module that converts between nibabel's (x, y, z) voxel order and our ``[z, y, x]`` arrays:
the array is transposed and the zooms reversed here, and nowhere else. Every refusal is an
``InvalidMask`` with a stable reason code. Limits are checked from the header before any voxel is read,
so a hostile file cannot exhaust memory.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import re
import zlib
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
from nibabel.openers import ImageOpener

from monitor.config import Settings
from monitor.errors import InvalidMask
from monitor.qc.labels import ACDC, LabelMap
from monitor.typing import Shape3, Spacing3

__all__ = [
    "ImageVolume",
    "Limits",
    "MaskVolume",
    "load_image",
    "load_mask",
    "read_image",
    "save_labels",
    "temporary_writer",
]

#: Name of the temporary file ``save_labels`` writes before renaming it into place: ``.<name>.<pid>.tmp``
#: followed by the target's ``.nii``/``.nii.gz``.
_TEMPORARY = re.compile(r"\.(?P<target>.+)\.(?P<pid>\d+)\.tmp\.nii(?:\.gz)?")
#: Most label values named in a ``labels_outside_map`` message (an image has hundreds).
_MAX_VALUES_SHOWN = 8


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    """Size limits applied before reading voxels."""

    max_file_bytes: int = 512 * 1024**2  #: bytes on disk
    max_voxels: int = 64 * 1024**2  #: voxels in the volume
    max_dim: int = 2048  #: voxels along any axis
    min_inplane_voxels: int = 8  #: smallest in-plane extent
    max_header_bytes: int = 16 * 1024**2  #: header + extensions (the voxel data offset), decompressed

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        """The limits configured in ``Settings``."""
        return cls(
            max_file_bytes=settings.max_file_bytes,
            max_voxels=settings.max_voxels,
            max_dim=settings.max_dim,
            min_inplane_voxels=settings.min_inplane_voxels,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class MaskVolume:
    """A validated segmentation mask in canonical labels (0 BG, 1 RV, 2 MYO, 3 LV)."""

    labels: np.ndarray  #: uint8 [z, y, x], canonical labels
    spacing_mm: Spacing3  #: voxel size (dz, dy, dx) in mm
    affine: np.ndarray  #: 4x4 voxel-to-world affine of the file (nibabel's (x, y, z) voxel order)
    path: Path | None = None  #: source file, when loaded from disk

    @property
    def shape(self) -> Shape3:
        """Array shape [z, y, x] in voxels."""
        return tuple(int(n) for n in self.labels.shape)  # type: ignore[return-value]


@dataclass(frozen=True, slots=True, kw_only=True)
class ImageVolume:
    """An MR image (intensities as stored, any scale), in the same voxel order as ``MaskVolume``."""

    data: np.ndarray  #: float32 [z, y, x]
    spacing_mm: Spacing3  #: voxel size (dz, dy, dx) in mm
    affine: np.ndarray  #: 4x4 voxel-to-world affine of the file (nibabel's (x, y, z) voxel order)
    path: Path | None = None  #: source file

    @property
    def shape(self) -> Shape3:
        """Array shape [z, y, x] in voxels."""
        return tuple(int(n) for n in self.data.shape)  # type: ignore[return-value]


def _gzip_is_broken(path: Path) -> bool:
    """True when the file is gzip-compressed but its first kilobytes cannot be decompressed."""
    with open(path, "rb") as fh:
        if fh.read(2) != b"\x1f\x8b":
            return False
    try:
        with gzip.open(path, "rb") as fh:
            fh.read(1024)
    except (EOFError, OSError, zlib.error):
        return True
    return False


def _check_raw_pixdim(path: Path, header_class: type) -> None:
    """Refuse zero, negative or non-finite voxel sizes that nibabel would silently 'fix' on load."""
    with ImageOpener(str(path)) as fh:
        raw = header_class.from_fileobj(fh, check=False)
    ndim = int(raw["dim"][0])
    pixdim = [float(v) for v in raw["pixdim"][1 : 1 + min(max(ndim, 0), 3)]]
    if not all(np.isfinite(v) and v > 0 for v in pixdim):
        raise InvalidMask("bad_spacing", f"voxel spacing must be finite and positive, got {pixdim} mm", path)


def _check_preamble(path: Path, limits: Limits) -> None:
    """Bound what nibabel will read before the voxels: the data offset and every header extension.

    nibabel trusts ``vox_offset`` and each extension's size: a small ``.nii.gz`` can claim an offset of
    gigabytes (decompressed and discarded: minutes of CPU) or an extension of a gigabyte (read into
    memory). Only the fixed header and at most ``limits.max_header_bytes`` are decompressed here. Files
    whose header cannot be read at all are left to ``nib.load``, which names the problem.
    """
    try:
        with ImageOpener(str(path)) as fh:
            head = fh.read(544)
    except (OSError, EOFError, zlib.error):
        return
    header_class: type | None = None
    for candidate in (nib.Nifti1Header, nib.Nifti2Header):
        size = candidate.template_dtype.itemsize
        if len(head) >= 4 and size in (int.from_bytes(head[:4], "little"), int.from_bytes(head[:4], "big")):
            header_class = candidate
    if header_class is None:
        return
    size = header_class.template_dtype.itemsize
    if len(head) < size:
        return  # a header still being written: nib.load says truncated
    try:
        header = header_class(head[:size], check=False)
    except Exception:  # nibabel raises many types for garbage
        return
    offset = float(header["vox_offset"])
    if not np.isfinite(offset) or offset < 0:
        raise InvalidMask("bad_header", f"voxel data offset {offset} is not a valid byte position", path)
    if offset > limits.max_header_bytes:
        raise InvalidMask(
            "too_large",
            f"voxel data offset of {offset:.0f} bytes exceeds the header limit of {limits.max_header_bytes}",
            path,
        )
    if len(head) < size + 4 or head[size : size + 1] == b"\x00":
        return  # no extensions
    end = int(offset)
    try:
        with ImageOpener(str(path)) as fh:
            preamble = fh.read(end)
    except (OSError, EOFError, zlib.error):
        return
    position = size + 4
    order = "little" if int.from_bytes(head[:4], "little") == size else "big"
    while end - position >= 16 and len(preamble) >= position + 8:
        esize = int.from_bytes(preamble[position : position + 4], order, signed=True)
        if esize < 16 or position + esize > end:
            raise InvalidMask(
                "bad_header",
                f"header extension of {esize} bytes at byte {position} does not fit before the voxel "
                f"data at byte {end}",
                path,
            )
        position += esize


def _header_image(path: Path, limits: Limits | None = None) -> nib.Nifti1Image | nib.Nifti2Image:
    """Open a NIfTI file lazily (header only), refusing anything that is not a NIfTI-1/2 image."""
    name = path.name.lower()
    if not (name.endswith(".nii") or name.endswith(".nii.gz")):
        raise InvalidMask("not_nifti", f"expected a .nii or .nii.gz file, got {path.name!r}", path)
    try:
        size = path.stat().st_size
    except FileNotFoundError as exc:
        raise InvalidMask("missing", "file vanished before it could be read", path) from exc
    except OSError as exc:
        raise InvalidMask("unreadable", f"cannot stat file: {exc.strerror or exc}", path) from exc
    if not path.is_file():
        raise InvalidMask("not_a_file", "path is not a regular file", path)
    if size == 0:
        raise InvalidMask("empty_file", "file is empty (0 bytes)", path)
    if not os.access(path, os.R_OK):
        raise InvalidMask("unreadable", "file is not readable (permission denied)", path)
    _check_preamble(path, limits or Limits())
    try:
        img = nib.load(str(path), mmap=False)
    except PermissionError as exc:
        raise InvalidMask("unreadable", "file is not readable (permission denied)", path) from exc
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise InvalidMask("corrupt", f"compressed stream is corrupt or truncated ({exc})", path) from exc
    except Exception as exc:  # nibabel raises many types for non-NIfTI content
        if _gzip_is_broken(path):
            raise InvalidMask("corrupt", "compressed stream is corrupt or truncated", path) from exc
        raise InvalidMask(
            "not_nifti", f"not a readable NIfTI header ({type(exc).__name__}: {exc})", path
        ) from exc
    if not isinstance(img, nib.Nifti1Image | nib.Nifti2Image):
        raise InvalidMask("not_nifti", f"expected a NIfTI image, got {type(img).__name__}", path)
    _check_raw_pixdim(path, type(img.header))
    return img


def _check_header(img: nib.Nifti1Image, path: Path, limits: Limits) -> tuple[Shape3, Spacing3]:
    """Validate shape and spacing from the header; return the (x, y, z) shape and the [z, y, x] spacing."""
    shape = tuple(int(n) for n in img.shape)
    if len(shape) == 4 and shape[3] == 1:
        shape = shape[:3]
    if len(shape) != 3:
        raise InvalidMask(
            "bad_ndim", f"expected a 3D label volume (or 4D with one frame), got shape {shape}", path
        )
    if min(shape) < 1:
        raise InvalidMask("bad_shape", f"every axis needs at least one voxel, got shape {shape}", path)
    if max(shape) > limits.max_dim:
        raise InvalidMask(
            "too_large", f"axis of {max(shape)} voxels exceeds the limit of {limits.max_dim}", path
        )
    if min(shape[0], shape[1]) < limits.min_inplane_voxels:
        raise InvalidMask(
            "bad_shape",
            f"in-plane extent {shape[0]}x{shape[1]} is below {limits.min_inplane_voxels} voxels "
            "(a 2D image stored on the wrong axis?)",
            path,
        )
    n_voxels = shape[0] * shape[1] * shape[2]
    if n_voxels > limits.max_voxels:
        raise InvalidMask("too_large", f"{n_voxels} voxels exceed the limit of {limits.max_voxels}", path)
    if path.stat().st_size > limits.max_file_bytes:
        raise InvalidMask(
            "too_large",
            f"{path.stat().st_size} bytes on disk exceed the limit of {limits.max_file_bytes}",
            path,
        )
    dtype = img.get_data_dtype()
    if dtype.kind not in "uif" or dtype.itemsize > 8:
        raise InvalidMask("bad_dtype", f"voxel type {dtype} cannot hold labels", path)
    zooms = tuple(float(z) for z in img.header.get_zooms()[:3])
    if len(zooms) != 3 or not all(np.isfinite(z) and z > 0 for z in zooms):
        raise InvalidMask("bad_spacing", f"voxel spacing must be finite and positive, got {zooms} mm", path)
    if not np.all(np.isfinite(img.affine)):
        raise InvalidMask("bad_affine", "the affine contains non-finite values", path)
    spacing_zyx = (zooms[2], zooms[1], zooms[0])
    return shape, spacing_zyx  # type: ignore[return-value]


def _read_voxels(img: nib.Nifti1Image, path: Path, shape_xyz: tuple[int, int, int]) -> np.ndarray:
    try:
        data = np.asanyarray(img.dataobj)
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise InvalidMask("corrupt", f"compressed stream is corrupt or truncated ({exc})", path) from exc
    except (OSError, ValueError) as exc:
        raise InvalidMask("truncated", f"voxel data cannot be read, file truncated? ({exc})", path) from exc
    return data.reshape(shape_xyz)


def _to_label_values(data: np.ndarray, path: Path, label_map: LabelMap) -> np.ndarray:
    """Check that voxel values are integer labels of the map; return them as uint8 (file values)."""
    if data.dtype.kind == "f":
        if not np.all(np.isfinite(data)):
            raise InvalidMask("float_labels", "labels contain NaN or infinite values", path)
        if not np.array_equal(data, np.round(data)):
            raise InvalidMask(
                "float_labels",
                "labels must be integers, got non-integer floating-point values (an image rather than a "
                "label mask?)",
                path,
            )
    lo, hi = data.min(), data.max()
    if lo < 0 or hi > 255:
        raise InvalidMask(
            "labels_outside_map",
            f"label values {float(lo):g}..{float(hi):g} outside the map {label_map.name} "
            f"(allowed {sorted(label_map.allowed_values)})",
            path,
        )
    values = data.astype(np.uint8, copy=False)
    present = np.flatnonzero(np.bincount(values.ravel(), minlength=256))
    extra = sorted(set(present.tolist()) - label_map.allowed_values)
    if extra:
        shown = ", ".join(str(v) for v in extra[:_MAX_VALUES_SHOWN])
        if len(extra) > _MAX_VALUES_SHOWN:
            shown += f", ... {extra[-1]} ({len(extra)} values; an image rather than a label mask?)"
        raise InvalidMask(
            "labels_outside_map",
            f"label values [{shown}] are not in the map {label_map.name} "
            f"(allowed {sorted(label_map.allowed_values)})",
            path,
        )
    return values


def load_mask(path: Path | str, label_map: LabelMap = ACDC, limits: Limits | None = None) -> MaskVolume:
    """Load and validate a segmentation mask.

    Args:
        path: a ``.nii`` or ``.nii.gz`` file with integer labels of ``label_map``.
        label_map: how the file labels the structures; converted to canonical labels.
        limits: size limits; defaults to ``Limits()``.
    Returns: a ``MaskVolume`` with canonical uint8 labels [z, y, x] and spacing (dz, dy, dx) in mm.
    Raises: InvalidMask with a reason code and a sentence naming the problem.
    """
    path = Path(path)
    limits = limits or Limits()
    img = _header_image(path, limits)
    shape_xyz, spacing = _check_header(img, path, limits)
    data = _read_voxels(img, path, shape_xyz)
    values = _to_label_values(data, path, label_map)
    labels = np.ascontiguousarray(label_map.to_canonical(values).transpose(2, 1, 0))
    return MaskVolume(
        labels=labels, spacing_mm=spacing, affine=np.asarray(img.affine, dtype=float), path=path
    )


def read_image(path: Path | str, limits: Limits | None = None) -> ImageVolume:
    """Load an MR image as float32 [z, y, x] with its spacing (dz, dy, dx) in mm and its affine.

    Raises: InvalidMask when the file is not a readable 3D NIfTI within the limits.
    """
    path = Path(path)
    limits = limits or Limits()
    img = _header_image(path, limits)
    shape_xyz, spacing = _check_header(img, path, limits)
    data = _read_voxels(img, path, shape_xyz).astype(np.float32, copy=False)
    return ImageVolume(
        data=np.ascontiguousarray(data.transpose(2, 1, 0)),
        spacing_mm=spacing,
        affine=np.asarray(img.affine, dtype=float),
        path=path,
    )


def load_image(path: Path | str, limits: Limits | None = None) -> tuple[np.ndarray, Spacing3]:
    """Load an MR image as float32 [z, y, x] with spacing (dz, dy, dx) in mm (for display).

    Raises: InvalidMask when the file is not a readable 3D NIfTI within the limits.
    """
    image = read_image(path, limits)
    return image.data, image.spacing_mm


def save_labels(
    path: Path | str, labels: np.ndarray, affine: np.ndarray, label_map: LabelMap | None = None
) -> Path:
    """Write a [z, y, x] uint8 label volume as NIfTI (atomically: temp file then rename).

    The temporary file (``.<name>.<pid>.tmp.nii.gz`` beside the target, see ``temporary_writer``) is
    removed when the write fails (a full or read-only disk), so a failure leaves nothing behind.

    Args:
        labels: canonical labels (or a boolean map) [z, y, x].
        affine: 4x4 affine for nibabel's (x, y, z) order, normally the source mask's.
        label_map: when given, canonical labels are converted to this map's values before writing.
    Returns: the path written.
    Raises: OSError when the folder cannot be created or the file cannot be written.
    """
    path = Path(path)
    values = np.asarray(labels).astype(np.uint8)
    if label_map is not None:
        values = label_map.from_canonical(values)
    img = nib.Nifti1Image(np.ascontiguousarray(values.transpose(2, 1, 0)), affine)
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    img.header.set_data_dtype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = ".nii.gz" if path.name.endswith(".nii.gz") else ".nii"
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp{suffix}")
    try:
        nib.save(img, str(tmp))
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):  # never hide the write's own error
            tmp.unlink()
        raise
    return path


def temporary_writer(name: str) -> int | None:
    """The process id in the name of a temporary file of ``save_labels``
    (``.16_pgt.nii.gz.4242.tmp.nii.gz`` -> 4242); None for any other name."""
    match = _TEMPORARY.fullmatch(name)
    return int(match["pid"]) if match else None
