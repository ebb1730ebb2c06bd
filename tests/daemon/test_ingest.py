"""Tests of ``monitor.ingest``: names, folders, sidecars, patterns and the completion tracker."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from monitor.ingest import (
    CompletionTracker,
    IngestConfig,
    MaskIdentity,
    SidecarError,
    find_root,
    identify,
    is_candidate,
    mask_stem,
    parse_name,
)

ROOT = Path("/watch")
CONFIG = IngestConfig()


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("patient101_ED.nii.gz", ("patient101", "ED", None)),
        ("patient101_es.nii", ("patient101", "ES", None)),
        ("patient001_frame01_gt.nii.gz", ("patient001", None, 1)),
        ("case_0042.nii.gz", ("case_0042", None, None)),
        ("sub-01_ses-2_ED.NII.GZ", ("sub-01_ses-2", "ED", None)),
    ],
    ids=["case_phase", "lower_phase_nii", "acdc", "nnunet", "upper_suffix"],
)
def test_parse_name(name: str, expected: tuple[str, str | None, int | None]) -> None:
    assert parse_name(name, CONFIG) == expected


def test_custom_pattern_first_and_must_name_case() -> None:
    config = IngestConfig(name_patterns=(r"(?P<phase>ED|ES)-(?P<case>\w+)", *CONFIG.name_patterns))
    assert parse_name("ES-patient7.nii.gz", config) == ("patient7", "ES", None)
    with pytest.raises(ValueError, match="case"):
        IngestConfig(name_patterns=(r"(?P<id>.+)",))
    with pytest.raises(ValueError, match="none of the name patterns"):
        parse_name("x.nii.gz", IngestConfig(name_patterns=(r"(?P<case>p\d+)",)))


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


def test_find_root_is_innermost() -> None:
    roots = [Path("/watch"), Path("/watch/site-b")]
    assert find_root(Path("/watch/site-b/x.nii.gz"), roots) == Path("/watch/site-b")
    assert find_root(Path("/watch/x.nii.gz"), roots) == Path("/watch")
    assert find_root(Path("/elsewhere/x.nii.gz"), roots) is None
    assert mask_stem("a.b.NII.gz") == "a.b"


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


def test_tracker_closed_is_due_at_once_else_after_stable() -> None:
    tracker = CompletionTracker(stable_s=2.0, incomplete_timeout_s=10.0)
    a, b = Path("/w/a.nii.gz"), Path("/w/b.nii.gz")
    tracker.observe(a, 10, 1, now=100.0, closed=True)
    tracker.observe(b, 10, 1, now=100.0)
    assert tracker.due(100.0) == [a]
    assert tracker.next_check() == 100.0
    assert tracker.observe(b, 20, 2, now=101.0)  # still growing
    assert tracker.due(102.5) == [a]
    assert tracker.due(103.0) == [a, b]
    assert not tracker.observe(b, 20, 2, now=103.5)  # unchanged sighting keeps its clock
    assert tracker.matches(b, 20, 2) and not tracker.matches(b, 20, 3)


def test_tracker_old_file_due_at_once_and_defer_until_expiry() -> None:
    tracker = CompletionTracker(stable_s=2.0, incomplete_timeout_s=10.0)
    old = Path("/w/old.nii.gz")
    tracker.observe(old, 5, 1, now=50.0, age_s=3600.0)
    assert tracker.due(50.0) == [old]
    assert tracker.expired(old, 50.0)
    fresh = Path("/w/fresh.nii.gz")
    tracker.observe(fresh, 5, 1, now=50.0, closed=True)
    tracker.defer(fresh, now=50.0, retry_s=30.0)  # does not parse yet: capped at the expiry
    assert tracker.next_check() < 50.0 and tracker.due(59.9) == [old]
    assert tracker.due(60.0) == [old, fresh] and tracker.expired(fresh, 60.0)
    tracker.observe(fresh, 6, 2, now=61.0, closed=True)  # it changed: due again, clock restarted
    assert fresh in tracker.due(61.0) and not tracker.expired(fresh, 61.0)
    tracker.forget_under(Path("/w"))
    assert len(tracker) == 0 and tracker.next_check() is None
