"""Tests of ``monitor.io.identity``: candidates, folders, sidecars and the identity of a watched file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from monitor.io.identity import IngestConfig, MaskIdentity, SidecarError, find_root, identify, is_candidate

ROOT = Path("/watch")
CONFIG = IngestConfig()


@pytest.mark.parametrize(
    ("relative", "taken"),
    [
        ("a.nii.gz", True),
        ("unet/1.0/a.nii", True),
        (".a.nii.gz", False),
        ("a.nii.gz.tmp", False),
        ("a.nii.gz.part", False),
        ("unet/.staging/a.nii.gz", False),
        ("a.json", False),
        ("a.nii.gz~", False),
    ],
)
def test_is_candidate(relative: str, taken: bool) -> None:
    assert is_candidate(ROOT / relative, ROOT, CONFIG) is taken


def test_custom_pattern_must_name_a_case() -> None:
    with pytest.raises(ValueError, match="case"):
        IngestConfig(name_patterns=(r"(?P<id>.+)",))
    with pytest.raises(ValueError, match="not a regular expression"):
        IngestConfig(name_patterns=(r"(?P<case>.+",))


def test_custom_pattern_is_tried_first(tmp_path: Path) -> None:
    config = IngestConfig(name_patterns=(r"(?P<phase>ED|ES)-(?P<case>\w+)", *CONFIG.name_patterns))
    identity = identify(tmp_path / "ES-patient7.nii.gz", tmp_path, config)
    assert (identity.case_key, identity.phase) == ("patient7", "ES")
    with pytest.raises(ValueError, match="none of the name patterns"):
        identify(tmp_path / "x.nii.gz", tmp_path, IngestConfig(name_patterns=(r"(?P<case>p\d+)",)))


def test_find_root_is_innermost() -> None:
    roots = [Path("/watch"), Path("/watch/site-b")]
    assert find_root(Path("/watch/site-b/x.nii.gz"), roots) == Path("/watch/site-b")
    assert find_root(Path("/watch/x.nii.gz"), roots) == Path("/watch")
    assert find_root(Path("/elsewhere/x.nii.gz"), roots) is None


def test_identify_from_folders(tmp_path: Path) -> None:
    path = tmp_path / "unet" / "1.2" / "extra" / "patient101_ED.nii.gz"
    assert identify(path, tmp_path, CONFIG) == MaskIdentity(
        case_key="patient101", phase="ED", segmenter_name="unet", segmenter_version="1.2"
    )
    flat = identify(tmp_path / "case7.nii.gz", tmp_path, CONFIG)
    assert (flat.segmenter_name, flat.segmenter_version, flat.phase) == ("unknown", "unknown", None)
    config = IngestConfig(folder_fields=("site", "segmenter", "version"), default_version="0")
    sited = identify(tmp_path / "h1" / "nnunet" / "p_ES.nii.gz", tmp_path, config)
    assert (sited.site, sited.segmenter_name, sited.segmenter_version) == ("h1", "nnunet", "0")
    with pytest.raises(ValueError, match="folder_fields"):
        IngestConfig(folder_fields=("segmenter", "colour"))


def test_identify_acdc_phase_from_info_cfg(tmp_path: Path) -> None:
    folder = tmp_path / "patient001"
    folder.mkdir()
    (folder / "Info.cfg").write_text("ED: 1\nES: 12\nGroup: DCM\n")
    assert identify(folder / "patient001_frame12_gt.nii.gz", tmp_path, CONFIG).phase == "ES"
    assert identify(folder / "patient001_frame01_gt.nii.gz", tmp_path, CONFIG).phase == "ED"
    assert identify(folder / "patient001_frame05_gt.nii.gz", tmp_path, CONFIG).phase == "frame05"


@pytest.mark.parametrize("sidecar_name", ["p1_ED.nii.gz.json", "p1_ED.json"])
def test_sidecar_overrides(tmp_path: Path, sidecar_name: str) -> None:
    folder = tmp_path / "unet" / "1.0"
    folder.mkdir(parents=True)
    document = {
        "segmenter": "nnunet",
        "version": 3,
        "site": "H2",
        "scanner": "Aera",
        "image": "../img/p1.nii.gz",
    }
    (folder / sidecar_name).write_text(json.dumps({**document, "ignored": [1]}))
    identity = identify(folder / "p1_ED.nii.gz", tmp_path, CONFIG)
    assert identity == MaskIdentity(
        case_key="p1",
        phase="ED",
        segmenter_name="nnunet",
        segmenter_version="3",
        site="H2",
        scanner="Aera",
        image_path=str((folder / "../img/p1.nii.gz").resolve()),
    )


@pytest.mark.parametrize(
    "text",
    ['{"segmenter": "un', "[1, 2]", '{"version": ""}', '{"site": {"a": 1}}'],
    ids=["partial", "list", "empty", "object"],
)
def test_bad_sidecar(tmp_path: Path, text: str) -> None:
    (tmp_path / "p1_ED.json").write_text(text)
    with pytest.raises(SidecarError) as caught:
        identify(tmp_path / "p1_ED.nii.gz", tmp_path, CONFIG)
    assert caught.value.reason == "bad_sidecar"
    assert identify(tmp_path / "p1_ED.nii.gz", tmp_path, CONFIG, use_sidecar=False).case_key == "p1"
