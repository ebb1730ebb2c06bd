"""Tests of ``monitor.io.layouts``: the one reader of NIfTI names, ACDC frames and ``Info.cfg``."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.io.layouts import (
    DEFAULT_NAME_PATTERNS,
    compile_name_patterns,
    ground_truth_base,
    image_names,
    is_nifti,
    mask_stem,
    nifti_files,
    normalise_case_key,
    normalise_phase,
    parse_name,
    phase_of_frame,
    read_info_cfg,
    split_frame,
    split_phase,
)

PATTERNS = compile_name_patterns(DEFAULT_NAME_PATTERNS)


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
    assert parse_name(name, PATTERNS) == expected


def test_custom_pattern_first_and_must_name_case() -> None:
    patterns = compile_name_patterns((r"(?P<phase>ED|ES)-(?P<case>\w+)", *DEFAULT_NAME_PATTERNS))
    assert parse_name("ES-patient7.nii.gz", patterns) == ("patient7", "ES", None)
    with pytest.raises(ValueError, match="case"):
        compile_name_patterns((r"(?P<id>.+)",))
    with pytest.raises(ValueError, match="at least one pattern"):
        compile_name_patterns(())
    with pytest.raises(ValueError, match="none of the name patterns"):
        parse_name("x.nii.gz", compile_name_patterns((r"(?P<case>p\d+)",)))


@pytest.mark.parametrize(
    ("name", "stem"),
    [
        ("a.nii.gz", "a"),
        ("a.b.NII.gz", "a.b"),
        ("p_ED.nii", "p_ED"),
        ("notes.txt", "notes.txt"),
        ("x.gz", "x.gz"),
    ],
)
def test_mask_stem(name: str, stem: str) -> None:
    assert mask_stem(name) == stem
    assert is_nifti(name) is (stem != name)


def test_ground_truth_and_acdc_names() -> None:
    assert ground_truth_base("patient001_frame12_gt.nii.gz") == "patient001_frame12"
    assert ground_truth_base("patient001_frame12.nii.gz") is None
    assert split_frame("patient001_frame12") == ("patient001", 12)
    assert split_frame("patient001_ED") is None and split_frame(None) is None
    assert split_phase("patient101_es") == ("patient101", "ES")
    assert split_phase("case_0042") == ("case_0042", "")


def test_info_cfg(tmp_path: Path) -> None:
    assert read_info_cfg(tmp_path) == {}  # absent
    (tmp_path / "Info.cfg").write_text("ED: 1\nes : 12\nGroup: DCM\nHeight: 184.0\nED: x\n")
    frames = read_info_cfg(tmp_path)
    assert frames == {"ED": 1, "ES": 12}
    assert phase_of_frame(frames, 12) == "ES" and phase_of_frame(frames, 5) is None


def test_nifti_files_are_sorted_and_skip_hidden(tmp_path: Path) -> None:
    for relative in ("b/p2.nii.gz", "a/p1.nii", ".hidden/p3.nii.gz", "a/.p4.nii.gz", "a/notes.txt"):
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_bytes(b"")
    (tmp_path / "folder.nii.gz").mkdir()  # a folder is not a file
    assert nifti_files(tmp_path) == [tmp_path / "a/p1.nii", tmp_path / "b/p2.nii.gz"]
    assert len(nifti_files(tmp_path, skip_hidden=False)) == 4


def test_image_names_next_to_a_mask() -> None:
    assert image_names("patient001_frame01_gt.nii.gz") == [
        "patient001_frame01.nii.gz",
        "patient001_frame01_gt_0000.nii.gz",
        "patient001_frame01_gt_image.nii.gz",
        "patient001_frame01_gt_img.nii.gz",
    ]
    assert image_names("case7.NII.GZ")[0] == "case7_0000.NII.GZ"  # the suffix as written
    assert image_names("mask.png") == []


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("patient002_frame01.nii.gz", ("patient002", None, 1)),
        ("patient002_frame12.nii", ("patient002", None, 12)),
        ("patient002_frame01_0000.nii.gz", ("patient002_frame01_0000", None, None)),  # an image channel
    ],
    ids=["nnunet_acdc", "nnunet_acdc_nii", "nnunet_image"],
)
def test_parse_nnunet_acdc_names(name: str, expected: tuple[str, str | None, int | None]) -> None:
    assert parse_name(name, PATTERNS) == expected


@pytest.mark.parametrize(
    ("text", "phase"),
    [
        ("ED", "ED"),
        ("es", "ES"),
        ("systole", "ES"),
        ("Systolic", "ES"),
        ("end-systolic", "ES"),
        ("End Systole", "ES"),
        ("end_diastole", "ED"),
        ("diastole", "ED"),
        ("end-diastolic", "ED"),
        ("frame5", "frame05"),
        ("frame_12", "frame12"),
    ],
)
def test_phase_synonyms_are_normalised(text: str, phase: str) -> None:
    assert normalise_phase(text) == phase


@pytest.mark.parametrize("text", ["mid", "ED1", "frame", "", "systole2"])
def test_unknown_phases_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="is not ED, ES"):
        normalise_phase(text)


def test_case_keys_are_normalised() -> None:
    assert normalise_case_key("ACDC_0012") == normalise_case_key("acdc_0012") == "acdc_0012"
    assert normalise_case_key(" Patient101 ") == "patient101"
    assert normalise_case_key("ＡＣＤＣ_0012") == "acdc_0012"  # full-width letters (NFKC)
    assert normalise_case_key("acdc-0012") != normalise_case_key("acdc_0012")


def test_a_name_pattern_with_an_unknown_phase_is_refused() -> None:
    patterns = compile_name_patterns((r"(?P<case>p\d+)-(?P<phase>\w+)",))
    assert parse_name("p7-systole.nii.gz", patterns) == ("p7", "ES", None)
    with pytest.raises(ValueError, match="is not ED, ES"):
        parse_name("p7-mid.nii.gz", patterns)
