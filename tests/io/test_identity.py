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


def test_nnunet_acdc_layout_yields_case_and_phase(tmp_path: Path) -> None:
    """nnU-Net's ACDC names (no ``_gt``) with the patient's ``Info.cfg`` beside them: ED and ES of one
    case, so that the pair can be found (a frame that is neither keeps ``frameNN``)."""
    folder = tmp_path / "nnunet" / "1" / "patient002"
    folder.mkdir(parents=True)
    (folder / "Info.cfg").write_text("ED: 1\nES: 12\nGroup: DCM\nNbFrame: 30\n")
    ed = identify(folder / "patient002_frame01.nii.gz", tmp_path, CONFIG)
    es = identify(folder / "patient002_frame12.nii.gz", tmp_path, CONFIG)
    assert (ed.case_key, ed.phase, es.case_key, es.phase) == ("patient002", "ED", "patient002", "ES")
    assert (ed.segmenter_name, ed.segmenter_version) == ("nnunet", "1")
    assert identify(folder / "patient002_frame07.nii.gz", tmp_path, CONFIG).phase == "frame07"
    (folder / "Info.cfg").unlink()
    assert identify(folder / "patient002_frame01.nii.gz", tmp_path, CONFIG).phase == "frame01"


def test_case_keys_from_names_and_sidecars_are_one_spelling(tmp_path: Path) -> None:
    upper = identify(tmp_path / "ACDC_0012_ED.nii.gz", tmp_path, CONFIG)
    lower = identify(tmp_path / "acdc_0012_ES.nii.gz", tmp_path, CONFIG)
    assert upper.case_key == lower.case_key == "acdc_0012"
    (tmp_path / "x_ED.json").write_text(json.dumps({"case": " ACDC_0012 ", "phase": "end-systolic"}))
    sidecar = identify(tmp_path / "x_ED.nii.gz", tmp_path, CONFIG)
    assert (sidecar.case_key, sidecar.phase) == ("acdc_0012", "ES")


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ({"case": 12, "phase": "systole"}, ("12", "ES")),  # integers are taken as their decimal text
        ({"case_key": "P9", "phase": "Diastole"}, ("p9", "ED")),
        ({"case": "p9", "case_key": "P9", "phase": "ED"}, ("p9", "ED")),  # two keys that agree
    ],
    ids=["int_case", "case_key", "agreeing_keys"],
)
def test_sidecar_values_accepted(
    tmp_path: Path, document: dict[str, object], expected: tuple[str, str]
) -> None:
    (tmp_path / "m.json").write_text(json.dumps(document))
    identity = identify(tmp_path / "m.nii.gz", tmp_path, CONFIG)
    assert (identity.case_key, identity.phase) == expected


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"case": 12.0}, "must be a string, got 12.0"),
        ({"case": True}, "must be a string, got true"),
        ({"phase": ["ES"]}, "must be a string, got list"),
        ({"phase": "mid-systole"}, "is not ED, ES"),
        ({"case": "p1", "case_key": "p2"}, "give different case_key values"),
        ({"case": None}, "must be a string, got null"),
    ],
    ids=["float", "bool", "list", "unknown_phase", "disagreeing_keys", "null_case"],
)
def test_sidecar_values_refused(tmp_path: Path, document: dict[str, object], message: str) -> None:
    (tmp_path / "m.json").write_text(json.dumps(document))
    with pytest.raises(SidecarError, match=message) as caught:
        identify(tmp_path / "m.nii.gz", tmp_path, CONFIG)
    assert caught.value.reason == "bad_sidecar"


def test_two_sidecars_must_agree(tmp_path: Path) -> None:
    """``x.nii.gz.json`` and ``x.json`` both present: used when they say the same, refused otherwise
    (one was picked silently)."""
    (tmp_path / "x.nii.gz.json").write_text(json.dumps({"case": "p1", "phase": "ES"}))
    (tmp_path / "x.json").write_text(json.dumps({"phase": "systole", "case": "P1"}))
    assert identify(tmp_path / "x.nii.gz", tmp_path, CONFIG).phase == "ES"
    (tmp_path / "x.json").write_text(json.dumps({"case": "p1", "phase": "ED"}))
    with pytest.raises(SidecarError, match=r"x\.nii\.gz\.json and x\.json, say different things"):
        identify(tmp_path / "x.nii.gz", tmp_path, CONFIG)
