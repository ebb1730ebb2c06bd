"""What a mask file in a watched folder is: names, folders and sidecars -> identity.

Pure decisions, no database and no threads (the daemon's intake does the I/O; when a file is complete
is decided by ``monitor.daemon.intake.CompletionTracker``):

- ``is_candidate``: include/exclude patterns (default ``*.nii``, ``*.nii.gz``; hidden and temporary
  names such as ``.x.nii.gz``, ``x.nii.gz.tmp``, ``x.nii.gz.part`` are ignored until renamed).
- ``identify``: case key and phase from the file name (``monitor.io.layouts``: ``{case}_{phase}``, ACDC
  ``{case}_frameNN_gt`` and nnU-Net's ACDC ``{case}_frameNN`` with the ``Info.cfg`` beside them,
  nnU-Net ``{case}``), segmenter name/version (and optionally site) from the folders under the watch
  root, overridden by an optional sidecar JSON. Case keys and phases are normalised
  (``normalise_case_key``, ``normalise_phase``), whichever source gave them.

Sidecar rules: one JSON object in ``<name>.json`` or ``<stem>.json`` (both present: they must agree);
values are strings, or integers taken as their decimal text; ``null`` unsets ``site``, ``scanner`` or
``image``; a phase must be one ``normalise_phase`` knows; two keys for one field (``case`` and
``case_key``) must agree; other keys are ignored. Anything else is a ``SidecarError``.

Example::

    config = IngestConfig()
    if is_candidate(path, root, config):
        identity = identify(path, root, config)   # MaskIdentity(case_key="patient101", phase="ED", ...)
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from monitor.errors import MonitorError
from monitor.io.layouts import (
    DEFAULT_NAME_PATTERNS,
    compile_name_patterns,
    mask_stem,
    normalise_case_key,
    normalise_phase,
    parse_name,
    phase_of_frame,
    read_info_cfg,
)

__all__ = [
    "DEFAULT_EXCLUDE",
    "DEFAULT_FOLDER_FIELDS",
    "DEFAULT_INCLUDE",
    "FOLDER_FIELD_NAMES",
    "SIDECAR_KEYS",
    "IngestConfig",
    "MaskIdentity",
    "SidecarError",
    "find_root",
    "identify",
    "is_candidate",
    "sidecar_image",
    "sidecar_paths",
]

#: File names taken by default.
DEFAULT_INCLUDE: tuple[str, ...] = ("*.nii", "*.nii.gz")
#: Names (of the file or of any folder below the watch root) never taken: hidden and temporary files.
DEFAULT_EXCLUDE: tuple[str, ...] = (".*", "*.tmp", "*.part", "*.partial", "*.crdownload", "*~")
#: What the folders between the watch root and the file mean, outermost first.
DEFAULT_FOLDER_FIELDS: tuple[str, ...] = ("segmenter", "version")
#: Field names allowed in ``IngestConfig.folder_fields``.
FOLDER_FIELD_NAMES: frozenset[str] = frozenset({"segmenter", "version", "site", "scanner"})
#: Sidecar keys and the identity field each one sets.
SIDECAR_KEYS: Mapping[str, str] = {
    "case": "case_key",
    "case_key": "case_key",
    "phase": "phase",
    "segmenter": "segmenter_name",
    "segmenter_name": "segmenter_name",
    "version": "segmenter_version",
    "segmenter_version": "segmenter_version",
    "site": "site",
    "scanner": "scanner",
    "image": "image_path",
    "image_path": "image_path",
}
_MAX_TEXT = {"case_key": 200, "phase": 32, "segmenter_name": 200, "segmenter_version": 100}
_MAX_TEXT_DEFAULT = 200


class SidecarError(MonitorError, ValueError):
    """The sidecar JSON next to a mask cannot be used (it may still be being written).

    Attributes:
        reason: ``"bad_sidecar"``.
        path: the sidecar file.
        detail: what is wrong with it.
    """

    reason = "bad_sidecar"

    def __init__(self, path: Path, detail: str) -> None:
        self.path = path
        super().__init__(detail)


@dataclass(frozen=True, slots=True, kw_only=True)
class IngestConfig:
    """How files are recognised and named."""

    include: tuple[str, ...] = DEFAULT_INCLUDE  #: glob patterns a file name must match (one of)
    exclude: tuple[str, ...] = DEFAULT_EXCLUDE  #: glob patterns that exclude a file or folder name
    name_patterns: tuple[str, ...] = (
        DEFAULT_NAME_PATTERNS  #: regexes, tried in order (``monitor.io.layouts``)
    )
    folder_fields: tuple[str, ...] = DEFAULT_FOLDER_FIELDS  #: meaning of the folders under the root
    default_segmenter: str = "unknown"  #: segmenter name when neither folders nor sidecar give one
    default_version: str = "unknown"  #: segmenter version when neither folders nor sidecar give one
    default_site: str | None = None  #: site when neither folders nor sidecar give one
    _compiled: tuple[re.Pattern[str], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.include:
            raise ValueError("include needs at least one pattern, e.g. '*.nii.gz'")
        unknown = [f for f in self.folder_fields if f not in FOLDER_FIELD_NAMES]
        if unknown or len(set(self.folder_fields)) != len(self.folder_fields):
            raise ValueError(
                f"folder_fields must be distinct names from {sorted(FOLDER_FIELD_NAMES)}, "
                f"got {list(self.folder_fields)}"
            )
        compiled = compile_name_patterns(self.name_patterns)
        for name in ("default_segmenter", "default_version"):
            if not getattr(self, name).strip():
                raise ValueError(f"{name} must be a non-empty string")
        object.__setattr__(self, "_compiled", compiled)

    @property
    def compiled_patterns(self) -> tuple[re.Pattern[str], ...]:
        """``name_patterns`` compiled (case-insensitive)."""
        return self._compiled


@dataclass(frozen=True, slots=True, kw_only=True)
class MaskIdentity:
    """Who and what a mask file is, as the queue stores it."""

    case_key: str  #: case identifier, e.g. "patient101"
    phase: str | None  #: "ED", "ES", "frameNN" when only the frame is known, or None
    segmenter_name: str  #: model that produced the mask
    segmenter_version: str  #: its version
    site: str | None = None  #: acquisition site, when known
    scanner: str | None = None  #: scanner model, when known
    image_path: str | None = None  #: the MR image (absolute, resolved against the mask's folder)


def find_root(path: Path, roots: Iterable[Path]) -> Path | None:
    """The innermost of ``roots`` that contains ``path`` (all absolute), or None."""
    best: Path | None = None
    for root in roots:
        if path.is_relative_to(root) and (best is None or len(root.parts) > len(best.parts)):
            best = root
    return best


def is_candidate(path: Path, root: Path, config: IngestConfig) -> bool:
    """True when ``path`` (a file under ``root``) should be scored: its name matches an include pattern
    and neither it nor a folder between ``root`` and it matches an exclude pattern."""
    try:
        parts = path.relative_to(root).parts
    except ValueError:
        return False
    if not parts:
        return False
    name = parts[-1]
    if not any(fnmatch.fnmatchcase(name.lower(), p.lower()) for p in config.include):
        return False
    return not any(fnmatch.fnmatchcase(part, p) for part in parts for p in config.exclude)


def sidecar_paths(path: Path) -> tuple[Path, Path]:
    """Where a sidecar may be: ``<name>.json`` (``x.nii.gz.json``), then ``<stem>.json`` (``x.json``)."""
    return path.with_name(f"{path.name}.json"), path.with_name(f"{mask_stem(path.name)}.json")


def identify(path: Path, root: Path, config: IngestConfig, *, use_sidecar: bool = True) -> MaskIdentity:
    """The identity of the mask at ``path`` under the watch folder ``root``.

    Folders between ``root`` and the file give ``config.folder_fields`` in order (extra folders are
    ignored); the name gives case key and phase (ACDC frames, ``_gt`` or not, are mapped to ED/ES with
    the ``Info.cfg`` next to the file, else ``frameNN``); a sidecar (``sidecar_paths``) overrides any of
    them. The case key is ``normalise_case_key``'d and the phase ``normalise_phase``'d.

    Args:
        use_sidecar: False ignores the sidecar (to name a file whose sidecar is broken).
    Raises: SidecarError when a sidecar breaks the sidecar rules (module docstring); ValueError when the
        name matches no pattern, its phase is not one, or a folder name is too long to be a segmenter,
        version or site.
    """
    relative = path.relative_to(root)
    folders = dict(zip(config.folder_fields, relative.parts[:-1], strict=False))
    case_key, phase, frame = parse_name(path.name, config.compiled_patterns)
    if phase is None and frame is not None:
        phase = phase_of_frame(read_info_cfg(path.parent), frame) or f"frame{frame:02d}"
    values: dict[str, str | None] = {
        "case_key": normalise_case_key(case_key),
        "phase": phase,
        "segmenter_name": folders.get("segmenter", config.default_segmenter),
        "segmenter_version": folders.get("version", config.default_version),
        "site": folders.get("site", config.default_site),
        "scanner": folders.get("scanner"),
        "image_path": None,
    }
    for key, value in values.items():
        limit = _MAX_TEXT.get(key, _MAX_TEXT_DEFAULT)
        if value is not None and len(value) > limit:
            raise ValueError(f"{key} from the file name or folders is longer than {limit} characters")
    if use_sidecar:
        values.update(_read_sidecar(path))
    image = values["image_path"]
    if image is not None:
        values["image_path"] = str((path.parent / image).resolve())
    return MaskIdentity(**values)  # type: ignore[arg-type]


def sidecar_image(path: Path) -> str | None:
    """The MR image the sidecar of the mask at ``path`` names (absolute, resolved against the mask's
    folder); None when there is no sidecar or it names none.

    Raises: SidecarError when a sidecar breaks the sidecar rules.
    """
    image = _read_sidecar(path).get("image_path")
    return str((path.parent / image).resolve()) if image is not None else None


def _read_sidecar(path: Path) -> dict[str, str | None]:
    """Identity fields set by the mask's sidecar; empty when there is none.

    Raises: SidecarError when a sidecar cannot be read or used, or both exist and disagree.
    """
    found: list[tuple[Path, dict[str, str | None]]] = []
    for candidate in sidecar_paths(path):
        try:
            text = candidate.read_text(encoding="utf-8")
        except FileNotFoundError:
            continue
        except (OSError, UnicodeDecodeError) as exc:
            raise SidecarError(candidate, f"sidecar {candidate.name} cannot be read: {exc}") from exc
        found.append((candidate, _parse_sidecar(candidate, text)))
    if len(found) == 2 and found[0][1] != found[1][1]:
        (first, _), (second, _) = found
        raise SidecarError(
            first, f"two sidecars, {first.name} and {second.name}, say different things: keep one of them"
        )
    return found[0][1] if found else {}


def _parse_sidecar(sidecar: Path, text: str) -> dict[str, str | None]:
    try:
        document: Any = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SidecarError(sidecar, f"sidecar {sidecar.name} is not valid JSON ({exc})") from exc
    if not isinstance(document, dict):
        raise SidecarError(
            sidecar, f"sidecar {sidecar.name} must hold a JSON object, got {type(document).__name__}"
        )
    values: dict[str, str | None] = {}
    given_by: dict[str, str] = {}
    for key, value in document.items():
        target = SIDECAR_KEYS.get(str(key).lower())
        if target is None:
            continue
        text_value = _sidecar_value(sidecar, str(key), target, value)
        if target in values and values[target] != text_value:
            raise SidecarError(
                sidecar, f"sidecar keys {given_by[target]!r} and {key!r} give different {target} values"
            )
        values[target], given_by[target] = text_value, str(key)
    return values


def _sidecar_value(sidecar: Path, key: str, target: str, value: Any) -> str | None:
    """One sidecar value as the identity field ``target`` holds it.

    Raises: SidecarError for a value of the wrong type, length or (phase) meaning.
    """
    if value is None and target not in _MAX_TEXT:
        return None  # site, scanner, image: unset
    if isinstance(value, bool) or not isinstance(value, str | int):
        shown = json.dumps(value)[:40] if not isinstance(value, dict | list) else type(value).__name__
        raise SidecarError(sidecar, f"sidecar key {key!r} must be a string, got {shown}")
    text_value = str(value).strip()
    limit = _MAX_TEXT.get(target, _MAX_TEXT_DEFAULT) if target != "image_path" else 4096
    if not text_value or len(text_value) > limit:
        raise SidecarError(
            sidecar, f"sidecar key {key!r} must be 1-{limit} characters, got {len(text_value)}"
        )
    if target == "case_key":
        return normalise_case_key(text_value)
    if target == "phase":
        try:
            return normalise_phase(text_value)
        except ValueError as exc:
            raise SidecarError(sidecar, f"sidecar key {key!r}: {exc}") from exc
    return text_value
