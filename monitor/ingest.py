"""What a mask file is and when it is complete: names, folders and sidecars -> identity; stability.

Pure decisions, no database and no threads (the daemon does the I/O):

- ``is_candidate``: include/exclude patterns (default ``*.nii``, ``*.nii.gz``; hidden and temporary
  names such as ``.x.nii.gz``, ``x.nii.gz.tmp``, ``x.nii.gz.part`` are ignored until renamed).
- ``identify``: case key and phase from the file name (``{case}_{phase}``, ACDC
  ``{case}_frameNN_gt`` with ``Info.cfg``, nnU-Net ``{case}``), segmenter name/version (and optionally
  site) from the folders under the watch root, overridden by an optional sidecar JSON.
- ``CompletionTracker``: a file is taken when it was closed after writing or moved in, or when its size
  and mtime have not changed for ``stable_s`` seconds; one that does not parse yet waits for its next
  change, and for at most ``incomplete_timeout_s`` seconds after its last one.

Example::

    config = IngestConfig()
    if is_candidate(path, root, config):
        identity = identify(path, root, config)   # MaskIdentity(case_key="patient101", phase="ED", ...)
"""

from __future__ import annotations

import fnmatch
import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from monitor.errors import MonitorError

__all__ = [
    "DEFAULT_EXCLUDE",
    "DEFAULT_FOLDER_FIELDS",
    "DEFAULT_INCLUDE",
    "DEFAULT_NAME_PATTERNS",
    "FOLDER_FIELD_NAMES",
    "SIDECAR_KEYS",
    "CompletionTracker",
    "IngestConfig",
    "MaskIdentity",
    "SidecarError",
    "find_root",
    "identify",
    "is_candidate",
    "mask_stem",
    "parse_name",
    "sidecar_paths",
]

#: File names taken by default.
DEFAULT_INCLUDE: tuple[str, ...] = ("*.nii", "*.nii.gz")
#: Names (of the file or of any folder below the watch root) never taken: hidden and temporary files.
DEFAULT_EXCLUDE: tuple[str, ...] = (".*", "*.tmp", "*.part", "*.partial", "*.crdownload", "*~")
#: Name patterns tried in order (regular expressions over the name without ``.nii``/``.nii.gz``, matched
#: in full, case-insensitive). Groups: ``case`` (required), ``phase`` or ``frame`` (optional).
DEFAULT_NAME_PATTERNS: tuple[str, ...] = (
    r"(?P<case>.+?)_frame(?P<frame>\d+)_gt",  # ACDC ground truth / predictions named like it
    r"(?P<case>.+)_(?P<phase>ED|ES)",  # {case}_{phase}
    r"(?P<case>.+)",  # nnU-Net: {case}
)
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
_INFO_CFG = "Info.cfg"


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
    name_patterns: tuple[str, ...] = DEFAULT_NAME_PATTERNS  #: regexes, tried in order (see above)
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
        compiled = []
        for pattern in self.name_patterns:
            try:
                regex = re.compile(pattern, re.IGNORECASE)
            except re.error as exc:
                raise ValueError(f"name pattern {pattern!r} is not a regular expression: {exc}") from exc
            if "case" not in regex.groupindex:
                raise ValueError(f"name pattern {pattern!r} needs a (?P<case>...) group")
            compiled.append(regex)
        if not compiled:
            raise ValueError("name_patterns needs at least one pattern, e.g. '(?P<case>.+)'")
        for name in ("default_segmenter", "default_version"):
            if not getattr(self, name).strip():
                raise ValueError(f"{name} must be a non-empty string")
        object.__setattr__(self, "_compiled", tuple(compiled))

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


def mask_stem(name: str) -> str:
    """A file name without ``.nii.gz`` or ``.nii`` (case-insensitive)."""
    lower = name.lower()
    for suffix in (".nii.gz", ".nii"):
        if lower.endswith(suffix):
            return name[: -len(suffix)]
    return name


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


def parse_name(name: str, config: IngestConfig) -> tuple[str, str | None, int | None]:
    """Case key, phase and frame number from a file name, by the first matching pattern.

    Returns: (case key, phase upper-cased or None, frame number or None).
    Raises: ValueError when no pattern matches (or the case group is empty).
    """
    stem = mask_stem(name)
    for regex in config.compiled_patterns:
        match = regex.fullmatch(stem)
        if match is None or not match.group("case"):
            continue
        groups = match.groupdict()
        phase = groups.get("phase")
        frame = groups.get("frame")
        return match.group("case"), phase.upper() if phase else None, int(frame) if frame else None
    raise ValueError(f"file name {name!r} matches none of the name patterns {list(config.name_patterns)}")


def sidecar_paths(path: Path) -> tuple[Path, Path]:
    """Where a sidecar may be: ``<name>.json`` (``x.nii.gz.json``), then ``<stem>.json`` (``x.json``)."""
    return path.with_name(f"{path.name}.json"), path.with_name(f"{mask_stem(path.name)}.json")


def identify(path: Path, root: Path, config: IngestConfig, *, use_sidecar: bool = True) -> MaskIdentity:
    """The identity of the mask at ``path`` under the watch folder ``root``.

    Folders between ``root`` and the file give ``config.folder_fields`` in order (extra folders are
    ignored); the name gives case key and phase (ACDC frames are mapped to ED/ES with the ``Info.cfg``
    next to the file, else ``frameNN``); a sidecar (``sidecar_paths``) overrides any of them.

    Args:
        use_sidecar: False ignores the sidecar (to name a file whose sidecar is broken).
    Raises: SidecarError when a sidecar exists but is not a JSON object of strings; ValueError when the
        name matches no pattern or a folder name is too long to be a segmenter, version or site.
    """
    relative = path.relative_to(root)
    folders = dict(zip(config.folder_fields, relative.parts[:-1], strict=False))
    case_key, phase, frame = parse_name(path.name, config)
    if phase is None and frame is not None:
        phase = _phase_from_info_cfg(path.parent / _INFO_CFG, frame) or f"frame{frame:02d}"
    values: dict[str, str | None] = {
        "case_key": case_key,
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


def _phase_from_info_cfg(info: Path, frame: int) -> str | None:
    """``ED``/``ES`` when ACDC's ``Info.cfg`` names ``frame`` as one of them; None otherwise."""
    try:
        text = info.read_text(errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip().upper() in ("ED", "ES"):
            try:
                if int(value.strip()) == frame:
                    return key.strip().upper()
            except ValueError:
                continue
    return None


def _read_sidecar(path: Path) -> dict[str, str | None]:
    """Identity fields set by the mask's sidecar; empty when there is none."""
    for candidate in sidecar_paths(path):
        try:
            text = candidate.read_text(encoding="utf-8")
        except FileNotFoundError:
            continue
        except (OSError, UnicodeDecodeError) as exc:
            raise SidecarError(candidate, f"sidecar {candidate.name} cannot be read: {exc}") from exc
        return _parse_sidecar(candidate, text)
    return {}


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
    for key, value in document.items():
        target = SIDECAR_KEYS.get(str(key).lower())
        if target is None:
            continue
        if value is None and target not in _MAX_TEXT:
            values[target] = None
            continue
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise SidecarError(sidecar, f"sidecar key {key!r} must be a string, got {type(value).__name__}")
        if isinstance(value, float) and not math.isfinite(value):
            raise SidecarError(sidecar, f"sidecar key {key!r} must be a string, got {value}")
        text_value = str(value).strip()
        limit = _MAX_TEXT.get(target, _MAX_TEXT_DEFAULT) if target != "image_path" else 4096
        if not text_value or len(text_value) > limit:
            raise SidecarError(
                sidecar, f"sidecar key {key!r} must be 1-{limit} characters, got {len(text_value)}"
            )
        values[target] = (
            text_value.upper() if target == "phase" and text_value.upper() in ("ED", "ES") else text_value
        )
    return values


@dataclass(slots=True)
class _Entry:
    size: int  #: bytes at the last observation
    mtime_ns: int  #: mtime at the last observation
    changed_at: float  #: monotonic time of the last observed change
    closed: bool  #: a close-after-write or move-in was seen since the last change
    check_at: float  #: monotonic time from which the file may be checked


class CompletionTracker:
    """Decides when a file that is being written is complete (pure bookkeeping; the caller stats).

    A file becomes *due* when it was closed after writing or moved in (``observe(..., closed=True)``),
    or when ``stable_s`` seconds passed since its size or mtime last changed. When the caller finds that
    a due file does not parse yet, ``defer`` puts it back until it changes again (or ``retry_s``
    passes); ``expired`` says when ``incomplete_timeout_s`` seconds have passed since its last change,
    after which the caller rejects it.

    Times are monotonic seconds (``time.monotonic()``); ``age_s`` tells how long ago a file seen for the
    first time was last modified (from its mtime), so that old files found by a scan are due at once.

    Example::

        tracker = CompletionTracker(stable_s=2.0, incomplete_timeout_s=60.0)
        tracker.observe(path, size, mtime_ns, now=time.monotonic(), closed=True)
        for path in tracker.due(time.monotonic()):
            ...
    """

    def __init__(self, *, stable_s: float, incomplete_timeout_s: float) -> None:
        if not stable_s >= 0:
            raise ValueError(f"stable_s must be >= 0 seconds, got {stable_s}")
        if not incomplete_timeout_s > 0:
            raise ValueError(f"incomplete_timeout_s must be > 0 seconds, got {incomplete_timeout_s}")
        self.stable_s = stable_s
        self.incomplete_timeout_s = incomplete_timeout_s
        self._entries: dict[Path, _Entry] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, path: object) -> bool:
        return path in self._entries

    def observe(
        self, path: Path, size: int, mtime_ns: int, *, now: float, closed: bool = False, age_s: float = 0.0
    ) -> bool:
        """Record a sighting of ``path`` with this size and mtime.

        Args:
            closed: the sighting is a close-after-write or a move into the folder (complete now).
            age_s: for a file not tracked yet, seconds since its mtime (>= 0); ignored otherwise.
        Returns: True when the file is new or changed since the last sighting.
        """
        entry = self._entries.get(path)
        if entry is None:
            changed_at = now - max(0.0, age_s)
            self._entries[path] = _Entry(
                size=size,
                mtime_ns=mtime_ns,
                changed_at=changed_at,
                closed=closed,
                check_at=self._ready(changed_at, closed),
            )
            return True
        changed = (size, mtime_ns) != (entry.size, entry.mtime_ns)
        if changed:
            entry.size, entry.mtime_ns, entry.changed_at, entry.closed = size, mtime_ns, now, closed
            entry.check_at = self._ready(now, closed)
        elif closed and not entry.closed:
            entry.closed = True
            entry.check_at = min(entry.check_at, now)
        return changed

    def _ready(self, changed_at: float, closed: bool) -> float:
        return changed_at if closed else changed_at + self.stable_s

    def matches(self, path: Path, size: int, mtime_ns: int) -> bool:
        """True when ``path`` is tracked with exactly this size and mtime."""
        entry = self._entries.get(path)
        return entry is not None and (entry.size, entry.mtime_ns) == (size, mtime_ns)

    def due(self, now: float) -> list[Path]:
        """Tracked files that may be checked now, longest-waiting first."""
        ready = [(e.check_at, p) for p, e in self._entries.items() if e.check_at <= now]
        return [p for _, p in sorted(ready, key=lambda item: item[0])]

    def defer(self, path: Path, now: float, retry_s: float) -> None:
        """Check ``path`` again after ``retry_s`` seconds (or sooner if it changes), but not after it
        has expired."""
        entry = self._entries.get(path)
        if entry is not None:
            entry.closed = False
            entry.check_at = min(now + retry_s, entry.changed_at + self.incomplete_timeout_s)

    def expired(self, path: Path, now: float) -> bool:
        """True when ``incomplete_timeout_s`` seconds have passed since ``path`` last changed."""
        entry = self._entries.get(path)
        return entry is not None and now - entry.changed_at >= self.incomplete_timeout_s

    def forget(self, path: Path) -> None:
        """Stop tracking ``path`` (taken, deleted or moved away)."""
        self._entries.pop(path, None)

    def forget_under(self, path: Path) -> None:
        """Stop tracking ``path`` and every file below it (a folder deleted or moved away)."""
        for tracked in [p for p in self._entries if p == path or p.is_relative_to(path)]:
            del self._entries[tracked]

    def next_check(self) -> float | None:
        """Monotonic time of the earliest check, or None when nothing is tracked."""
        return min((e.check_at for e in self._entries.values()), default=None)
