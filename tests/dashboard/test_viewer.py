"""dashboard.viewer: paths resolved inside the configured folders only, image naming conventions,
slice rendering."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from dashboard.viewer import (
    INCONSISTENCY_RGB,
    LABEL_RGB,
    busiest_slice,
    image_candidates,
    render_slice,
    resolve_inside,
)


@pytest.fixture
def tree(tmp_path: Path) -> tuple[Path, Path]:
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "a.nii.gz").write_bytes(b"x")
    outside = tmp_path / "outside.nii.gz"
    outside.write_bytes(b"y")
    return root, outside


def test_resolve_inside_accepts_files_under_a_root(tree: tuple[Path, Path]) -> None:
    root, _ = tree
    assert resolve_inside(root / "sub" / "a.nii.gz", [root]) == (root / "sub" / "a.nii.gz").resolve()
    assert (
        resolve_inside("sub/a.nii.gz", [root]) == (root / "sub" / "a.nii.gz").resolve()
    )  # relative to a root


@pytest.mark.parametrize(
    "raw",
    ["outside", "dotdot", "symlink", "missing", "folder", "empty", "none", "nul"],
)
def test_resolve_inside_refuses(tree: tuple[Path, Path], raw: str) -> None:
    root, outside = tree
    (root / "link.nii.gz").symlink_to(outside)
    value = {
        "outside": str(outside),
        "dotdot": str(root / "sub" / ".." / ".." / outside.name),
        "symlink": str(root / "link.nii.gz"),
        "missing": str(root / "nope.nii.gz"),
        "folder": str(root / "sub"),
        "empty": "",
        "none": None,
        "nul": str(root / "sub" / "a.nii.gz\x00"),
    }[raw]
    assert resolve_inside(value, [root]) is None


def test_resolve_inside_needs_a_root(tree: tuple[Path, Path]) -> None:
    root, _ = tree
    assert resolve_inside(root / "sub" / "a.nii.gz", []) is None


@pytest.mark.parametrize(
    ("mask", "sidecar", "first"),
    [
        ("/d/patient001_frame01_gt.nii.gz", None, "/d/patient001_frame01.nii.gz"),
        ("/d/case7.nii.gz", None, "/d/case7_0000.nii.gz"),
        ("/d/p101_ED.nii", None, "/d/p101_ED_0000.nii"),
        ("/d/p101_ED.nii.gz", "/img/p101.nii.gz", "/img/p101.nii.gz"),
    ],
    ids=["acdc", "nnunet", "plain-nii", "sidecar-first"],
)
def test_image_candidates(mask: str, sidecar: str | None, first: str) -> None:
    candidates = image_candidates(mask, sidecar)
    assert candidates[0] == Path(first)
    beside = Path(mask).parent
    assert all(
        c.parent in (beside, beside.parent / "imagesTs", beside.parent / "imagesTr")
        for c in candidates[1 if sidecar else 0 :]
    )


def test_image_candidates_of_a_non_nifti_name() -> None:
    assert image_candidates("/d/mask.png") == []


def test_render_slice_colours_labels_and_map() -> None:
    labels = np.zeros((4, 6), dtype=np.uint8)
    labels[1, 1], labels[1, 2], labels[1, 3] = 1, 2, 3
    rgb = render_slice(None, labels=labels, min_width_px=6)
    assert rgb.shape == (4, 6, 3) and rgb.dtype == np.uint8
    assert tuple(rgb[1, 1]) == LABEL_RGB[1] and tuple(rgb[1, 3]) == LABEL_RGB[3]
    assert tuple(rgb[0, 0]) == (0, 0, 0)
    xor = labels > 0
    assert tuple(render_slice(None, inconsistency=xor, min_width_px=6)[1, 2]) == INCONSISTENCY_RGB


def test_render_slice_over_image_enlarges_with_aspect() -> None:
    image = np.linspace(0, 100, 20, dtype=np.float32).reshape(4, 5)
    rgb = render_slice(image, labels=np.zeros((4, 5), np.uint8), spacing_yx_mm=(2.0, 1.0), min_width_px=50)
    assert rgb.shape == (4 * 20, 5 * 10, 3)  # x repeated 10 times, y twice as often (2 mm vs 1 mm)
    assert rgb[0, 0, 0] == 0 and rgb[-1, -1, 0] == 255  # 1st-99th percentile window


def test_render_slice_checks_shapes() -> None:
    with pytest.raises(ValueError, match="one shape"):
        render_slice(np.zeros((3, 3)), labels=np.zeros((3, 4), np.uint8))
    with pytest.raises(ValueError, match="needs an image"):
        render_slice(None)


def test_busiest_slice() -> None:
    xor = np.zeros((5, 3, 3), dtype=bool)
    mask = np.zeros((5, 3, 3), dtype=np.uint8)
    mask[1] = 1
    assert busiest_slice(None, xor, mask) == 1  # empty map: fall back to the mask
    xor[3, :2] = True
    assert busiest_slice(xor, mask) == 3
    assert busiest_slice(np.zeros((2, 2, 2))) == 0


def test_symlinked_root_is_allowed(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (real / "m.nii.gz").write_bytes(b"z")
    link = tmp_path / "link"
    os.symlink(real, link)
    assert resolve_inside(link / "m.nii.gz", [link]) == (real / "m.nii.gz")
