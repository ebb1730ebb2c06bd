"""The one reader of dataset layouts: NIfTI names and stems, ACDC frames and ``Info.cfg``, nnU-Net names.

Every other module asks here what a file name means:

- ``mask_stem``: a name without ``.nii.gz`` / ``.nii`` (case-insensitive);
- ``nifti_files``: the NIfTI files under a folder (recursive, sorted, hidden names skipped);
- ``read_info_cfg`` / ``phase_of_frame``: the ED and ES frame numbers of an ACDC patient folder;
- ``split_frame`` / ``split_phase`` / ``ground_truth_base``: ACDC ``patientNNN_frameFF_gt``,
  ``{case}_{ED|ES}`` and ``X_gt`` names taken apart;
- ``DEFAULT_NAME_PATTERNS`` / ``parse_name``: case key, phase and frame from a mask's file name, by
  configurable regular expressions (ACDC ``patientNNN_frameFF_gt``, nnU-Net's ACDC
  ``patientNNN_frameFF``, ``{case}_{phase}``, nnU-Net ``{case}``);
- ``normalise_case_key`` / ``normalise_phase``: the one spelling of a case key (``ACDC_0012`` and
  ``acdc_0012`` are one case) and of a phase (``systole``, ``end-systolic`` -> ``ES``);
- ``image_names`` / ``image_candidates``: the names the MR image of a mask may have next to it, and
  every place it may be (a sidecar's ``image``, beside the mask, nnU-Net's sibling ``imagesTs``).

Example::

    >>> mask_stem("patient001_frame01_gt.nii.gz")
    'patient001_frame01_gt'
    >>> split_frame(ground_truth_base("patient001_frame01_gt.nii.gz"))
    ('patient001', 1)
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from pathlib import Path

__all__ = [
    "DEFAULT_NAME_PATTERNS",
    "IMAGE_FOLDERS",
    "INFO_CFG",
    "NIFTI_SUFFIXES",
    "PHASE_SYNONYMS",
    "ParsedName",
    "compile_name_patterns",
    "ground_truth_base",
    "image_candidates",
    "image_names",
    "is_nifti",
    "mask_stem",
    "nifti_files",
    "normalise_case_key",
    "normalise_phase",
    "parse_name",
    "phase_of_frame",
    "read_info_cfg",
    "split_frame",
    "split_phase",
]

#: File name endings of NIfTI files, longest first.
NIFTI_SUFFIXES: tuple[str, ...] = (".nii.gz", ".nii")
#: nnU-Net's image folders; a mask in a sibling folder (``labelsTs``, a predictions folder) has its image
#: ``{case}_0000`` in one of them.
IMAGE_FOLDERS: tuple[str, ...] = ("imagesTs", "imagesTr")
#: Name of the ACDC patient description next to the frames.
INFO_CFG = "Info.cfg"
#: Name patterns tried in order (regular expressions over the name without ``.nii``/``.nii.gz``, matched
#: in full, case-insensitive). Groups: ``case`` (required), ``phase`` or ``frame`` (optional).
DEFAULT_NAME_PATTERNS: tuple[str, ...] = (
    r"(?P<case>.+?)_frame(?P<frame>\d+)_gt",  # ACDC ground truth / predictions named like it
    r"(?P<case>.+?)_frame(?P<frame>\d+)",  # nnU-Net's ACDC cases: patient002_frame01
    r"(?P<case>.+)_(?P<phase>ED|ES)",  # {case}_{phase}
    r"(?P<case>.+)",  # nnU-Net: {case}
)
#: (case key, phase ``ED``/``ES``/``frameNN`` or None, frame number or None).
ParsedName = tuple[str, str | None, int | None]
#: Phase names understood, after lower-casing and dropping spaces, ``-`` and ``_``, and the phase each
#: one means (``end-systolic`` -> ``endsystolic`` -> ``ES``).
PHASE_SYNONYMS: dict[str, str] = {
    "ed": "ED",
    "diastole": "ED",
    "diastolic": "ED",
    "enddiastole": "ED",
    "enddiastolic": "ED",
    "es": "ES",
    "systole": "ES",
    "systolic": "ES",
    "endsystole": "ES",
    "endsystolic": "ES",
}

_PHASES = ("ED", "ES")
_FRAME = re.compile(r"(?P<patient>.+)_frame(?P<frame>\d+)")
_PHASE = re.compile(r"(?P<patient>.+)_(?P<phase>ED|ES)", re.IGNORECASE)
_FRAME_PHASE = re.compile(r"frame(?P<frame>\d{1,4})")
_PHASE_SEPARATORS = str.maketrans("", "", " -_")


def normalise_case_key(text: str) -> str:
    """The one spelling of a case key: Unicode NFKC, surrounding spaces stripped, case folded.

    ``ACDC_0012``, ``acdc_0012`` and `` Acdc_0012 `` are one case (``acdc_0012``); separators and
    digits are kept as they are (``acdc-0012`` and ``acdc_12`` stay other cases).
    """
    return unicodedata.normalize("NFKC", text).strip().casefold()


def normalise_phase(text: str) -> str:
    """The one spelling of a cardiac phase: ``ED``, ``ES`` or ``frameNN``.

    Case, spaces, ``-`` and ``_`` do not matter; ``PHASE_SYNONYMS`` maps ``diastole``, ``end-diastolic``
    ... to ``ED`` and ``systole``, ``end-systolic`` ... to ``ES``; ``frame5`` / ``frame_05`` become
    ``frame05`` (a frame that is neither ED nor ES, or not known to be).

    Raises: ValueError for anything else, naming what is accepted.
    """
    compact = unicodedata.normalize("NFKC", text).casefold().translate(_PHASE_SEPARATORS)
    if compact in PHASE_SYNONYMS:
        return PHASE_SYNONYMS[compact]
    frame = _FRAME_PHASE.fullmatch(compact)
    if frame:
        return f"frame{int(frame['frame']):02d}"
    raise ValueError(
        f"phase {text[:40]!r} is not ED, ES (or a synonym such as 'end-diastolic', 'systole') or frameNN"
    )


def mask_stem(name: str) -> str:
    """A file name without ``.nii.gz`` or ``.nii`` (case-insensitive); other names are returned as they are."""
    lower = name.lower()
    for suffix in NIFTI_SUFFIXES:
        if lower.endswith(suffix):
            return name[: -len(suffix)]
    return name


def is_nifti(name: str) -> bool:
    """True for a name ending in ``.nii`` or ``.nii.gz`` (case-insensitive)."""
    return name.lower().endswith(NIFTI_SUFFIXES)


def nifti_files(root: Path, *, skip_hidden: bool = True) -> list[Path]:
    """NIfTI files under ``root`` (recursive, sorted).

    Args:
        skip_hidden: leave out files with a hidden name or under a hidden folder (``.x``) below ``root``.
    """
    found = [
        p
        for p in root.rglob("*")
        if is_nifti(p.name)
        and p.is_file()
        and not (skip_hidden and any(part.startswith(".") for part in p.relative_to(root).parts))
    ]
    return sorted(found)


def read_info_cfg(folder: Path) -> dict[str, int]:
    """ED and ES frame numbers from ``folder/Info.cfg`` (ACDC), e.g. ``{"ED": 1, "ES": 12}``.

    Lines ``ED: n`` / ``ES: n`` (case-insensitive keys, spaces allowed) count; anything else is ignored.
    Returns: {} when the file is absent or unreadable.
    """
    try:
        text = (folder / INFO_CFG).read_text(errors="replace")
    except OSError:
        return {}
    frames: dict[str, int] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        key = key.strip().upper()
        if sep and key in _PHASES and value.strip().isdecimal():
            frames[key] = int(value.strip())
    return frames


def phase_of_frame(frames: dict[str, int], frame: int) -> str | None:
    """``ED`` or ``ES`` when ``frames`` (``read_info_cfg``) names ``frame`` as one of them, else None."""
    return next((phase for phase, number in frames.items() if number == frame), None)


def ground_truth_base(name: str) -> str | None:
    """The case part of a ground-truth file name ``X_gt.nii(.gz)`` (``X``); None for other names."""
    stem = mask_stem(name)
    return stem.removesuffix("_gt") if stem.endswith("_gt") else None


def split_frame(base: str | None) -> tuple[str, int] | None:
    """``("patient001", 1)`` for ``patient001_frame01``; None when ``base`` names no frame."""
    match = _FRAME.fullmatch(base or "")
    return (match["patient"], int(match["frame"])) if match else None


def split_phase(base: str) -> tuple[str, str]:
    """``("patient101", "ED")`` for ``patient101_ED`` (any case); ``(base, "")`` without a phase."""
    match = _PHASE.fullmatch(base)
    return (match["patient"], match["phase"].upper()) if match else (base, "")


def image_names(mask_name: str) -> list[str]:
    """The file names the MR image of a mask may have in the mask's folder, most likely first.

    ACDC ``patient001_frame01.nii.gz`` for ``patient001_frame01_gt.nii.gz``, nnU-Net
    ``{case}_0000.nii.gz`` for ``{case}.nii.gz``, then ``{stem}_image`` and ``{stem}_img`` (the suffix is
    kept as written). Returns: [] for a name that is not NIfTI.
    """
    stem = mask_stem(mask_name)
    if stem == mask_name:
        return []
    suffix = mask_name[len(stem) :]
    names = [f"{stem}_0000{suffix}", f"{stem}_image{suffix}", f"{stem}_img{suffix}"]
    base = ground_truth_base(mask_name)
    if base is not None:
        names.insert(0, f"{base}{suffix}")
    return names


def image_candidates(mask_path: str | Path, image_path: str | Path | None = None) -> list[Path]:
    """Every place the MR image of a mask may be, most likely first (not checked for existence).

    1. ``image_path``: the image a sidecar names (``image``), already resolved;
    2. beside the mask, the names of ``image_names`` (ACDC ``patient001_frame01`` beside
       ``patient001_frame01_gt``, nnU-Net ``{case}_0000``, ``{stem}_image``, ``{stem}_img``);
    3. nnU-Net: ``{case}_0000`` in an ``imagesTs`` (or ``imagesTr``) folder beside the mask's folder
       (``<dataset>/labelsTs/case.nii.gz`` -> ``<dataset>/imagesTs/case_0000.nii.gz``).

    Returns: candidate paths without repeats; [] beyond ``image_path`` for a name that is not NIfTI.
    """
    mask = Path(mask_path)
    out = [Path(image_path)] if image_path else []
    out += [mask.with_name(name) for name in image_names(mask.name)]
    stem = mask_stem(mask.name)
    if stem != mask.name:
        suffix = mask.name[len(stem) :]
        out += [
            mask.parent.parent / folder / f"{stem}_0000{suffix}"
            for folder in IMAGE_FOLDERS
            if mask.parent.name != folder
        ]
    return list(dict.fromkeys(out))


def compile_name_patterns(patterns: Iterable[str]) -> tuple[re.Pattern[str], ...]:
    """The patterns compiled case-insensitive.

    Raises: ValueError for an invalid expression, one without a ``(?P<case>...)`` group, or no pattern.
    """
    compiled = []
    for pattern in patterns:
        try:
            regex = re.compile(pattern, re.IGNORECASE)
        except re.error as exc:
            raise ValueError(f"name pattern {pattern!r} is not a regular expression: {exc}") from exc
        if "case" not in regex.groupindex:
            raise ValueError(f"name pattern {pattern!r} needs a (?P<case>...) group")
        compiled.append(regex)
    if not compiled:
        raise ValueError("name_patterns needs at least one pattern, e.g. '(?P<case>.+)'")
    return tuple(compiled)


def parse_name(name: str, patterns: Iterable[re.Pattern[str]]) -> ParsedName:
    """Case key, phase and frame number from a file name, by the first pattern that matches in full.

    Args:
        name: file name (with or without ``.nii``/``.nii.gz``).
        patterns: from ``compile_name_patterns``.
    Returns: (case key as written, phase by ``normalise_phase`` or None, frame number or None).
    Raises: ValueError when no pattern matches (or the case group is empty), or the phase group holds
        no phase ``normalise_phase`` knows.
    """
    stem = mask_stem(name)
    tried = []
    for regex in patterns:
        tried.append(regex.pattern)
        match = regex.fullmatch(stem)
        if match is None or not match.group("case"):
            continue
        groups = match.groupdict()
        phase = groups.get("phase")
        frame = groups.get("frame")
        return match.group("case"), normalise_phase(phase) if phase else None, int(frame) if frame else None
    raise ValueError(f"file name {name!r} matches none of the name patterns {tried}")
