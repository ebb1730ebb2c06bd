"""Hostile and broken NIfTI inputs as bytes, each with the rejection reasons it may end with.

Shared by the daemon test (``test_hostile_inputs.py``), the loader tests and ``bench/soak.py``.
Every builder is small on disk; the bombs are small on disk and huge when decompressed.
"""

from __future__ import annotations

import functools
import gzip
import io
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import nibabel as nib
import numpy as np

from tests.daemon._harness import mask_bytes

__all__ = ["HOSTILE", "Hostile", "nifti_bytes"]

_AFFINE = np.diag([1.5, 1.5, 8.0, 1.0])
#: Decompressed size of each bomb (the compressed file is about 1/1000 of it).
BOMB_BYTES = 1024**3


def nifti_bytes(
    data: np.ndarray, *, affine: np.ndarray = _AFFINE, compress: bool = True, header: dict | None = None
) -> bytes:
    """``data`` ([x, y, z] nibabel order) as .nii(.gz) bytes, with raw header fields overwritten."""
    image = nib.Nifti1Image(data, affine)
    for key, value in (header or {}).items():
        image.header[key] = value
    raw = io.BytesIO()
    image.to_file_map(image.make_file_map({"image": raw, "header": raw}))
    blob = raw.getvalue()
    if header and "pixdim" in header:  # nibabel rewrites pixdim from the affine: patch the raw bytes
        pixdim = np.asarray(header["pixdim"], dtype="<f4").tobytes()
        blob = blob[:76] + pixdim + blob[76 + 32 :]
    return gzip.compress(blob, compresslevel=1) if compress else blob


def _bomb(prefix: bytes, n_zero_bytes: int = BOMB_BYTES) -> bytes:
    """``prefix`` followed by ``n_zero_bytes`` zeros, gzip-compressed: one member for the prefix, then
    one 16 MiB member of zeros repeated (a multi-member gzip file is one stream to every reader)."""
    chunk = 16 * 1024**2
    zeros = _zeros_member(chunk)
    return gzip.compress(prefix, compresslevel=1) + zeros * (n_zero_bytes // chunk)


@functools.cache
def _zeros_member(n_bytes: int) -> bytes:
    compressor = zlib.compressobj(9, wbits=31)
    return compressor.compress(bytes(n_bytes)) + compressor.flush()


def _header_only(shape: tuple[int, ...], **fields: object) -> bytes:
    """A NIfTI-1 header (and the 4-byte extension flag) claiming ``shape``, without voxel data."""
    header = nib.Nifti1Header()
    header.set_data_shape(shape)
    header.set_data_dtype(np.uint8)
    header["vox_offset"] = 352
    for key, value in fields.items():
        header[key] = value
    return header.binaryblock + b"\0\0\0\0"


def _giga_header() -> bytes:
    return gzip.compress(_header_only((1000, 1000, 1000)))


def _offset_bomb() -> bytes:
    """A valid small shape whose voxels claim to start 1 GB into the decompressed stream."""
    return _bomb(_header_only((16, 16, 2), vox_offset=float(BOMB_BYTES - 1024)))


def _extension_bomb() -> bytes:
    """A 1 MiB header area whose one extension claims 1 GB (nibabel would read it into memory)."""
    header = _header_only((16, 16, 2), vox_offset=float(1024**2))
    header = header[:-4] + b"\x01\0\0\0" + struct.pack("<ii", BOMB_BYTES - 4096, 4)
    return _bomb(header)


def _tail_bomb() -> bytes:
    """A valid mask followed by 1 GB of zeros in the same gzip stream: the loader reads only the
    bytes its header asks for, so this one is scored."""
    return _bomb(gzip.decompress(mask_bytes(777)))


def _truncated_gz() -> bytes:
    data = mask_bytes(778)
    return data[: len(data) // 2]


def _truncated_nii() -> bytes:
    """An uncompressed header promising 96 x 96 x 4 voxels, followed by a tenth of them."""
    return _header_only((96, 96, 4)) + bytes(96 * 96 * 4 // 10)


def _labels(dtype: type, value: float) -> np.ndarray:
    volume = np.zeros((32, 32, 3), dtype)
    volume[8:20, 8:20, :] = value
    return volume


def _spacing(value: float) -> bytes:
    return nifti_bytes(_labels(np.uint8, 1), header={"pixdim": [1, value, 1.5, 8, 1, 1, 1, 1]})


@dataclass(frozen=True, slots=True)
class Hostile:
    """One hostile input: how to build its bytes and which reasons may end it (empty: scored)."""

    build: Callable[[], bytes]
    reasons: frozenset[str]
    suffix: str = ".nii.gz"


HOSTILE: dict[str, Hostile] = {
    "giga_header": Hostile(_giga_header, frozenset({"too_large"})),
    "gzip_bomb_offset": Hostile(_offset_bomb, frozenset({"too_large"})),
    "gzip_bomb_extension": Hostile(_extension_bomb, frozenset({"bad_header"})),
    "gzip_bomb_tail": Hostile(_tail_bomb, frozenset()),
    "truncated_gz": Hostile(_truncated_gz, frozenset({"corrupt", "truncated"})),
    "truncated_nii": Hostile(_truncated_nii, frozenset({"truncated"}), suffix=".nii"),
    "text_as_nifti": Hostile(lambda: b"patient name: nobody\n" * 40, frozenset({"not_nifti", "corrupt"})),
    "gzipped_text": Hostile(
        lambda: gzip.compress(b"<html>not a mask</html>\n" * 40), frozenset({"not_nifti", "truncated"})
    ),
    "random_bytes": Hostile(
        lambda: np.random.default_rng(5).bytes(4096), frozenset({"not_nifti", "corrupt"})
    ),
    "nan_spacing": Hostile(lambda: _spacing(float("nan")), frozenset({"bad_spacing"})),
    "zero_spacing": Hostile(lambda: _spacing(0.0), frozenset({"bad_spacing"})),
    "negative_spacing": Hostile(lambda: _spacing(-1.5), frozenset({"bad_spacing"})),
    "float_labels": Hostile(lambda: nifti_bytes(_labels(np.float32, 1.5)), frozenset({"float_labels"})),
    "nan_labels": Hostile(lambda: nifti_bytes(_labels(np.float32, np.nan)), frozenset({"float_labels"})),
    "negative_labels": Hostile(lambda: nifti_bytes(_labels(np.int16, -1)), frozenset({"labels_outside_map"})),
    "image_2d": Hostile(lambda: nifti_bytes(np.zeros((32, 32), np.uint8)), frozenset({"bad_ndim"})),
    "image_5d": Hostile(lambda: nifti_bytes(np.zeros((32, 32, 3, 2, 2), np.uint8)), frozenset({"bad_ndim"})),
    "zero_bytes": Hostile(lambda: b"", frozenset({"empty_file"})),
}
