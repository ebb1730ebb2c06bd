"""What one complete mask file is: its content hash, its identity and whether it is a valid mask.

The per-file examination shared by the daemon's intake (``monitor.daemon.intake``) and the batch
backfill (``monitor.backfill``), so that both hash, name and validate a file the same way and reject a
bad one with the same reason code:

1. ``fingerprint``: refuse what must not be opened (a FIFO, socket or device; a symbolic link leading
   outside its folder), else the SHA-256 of the bytes;
2. ``examine``: the identity (``monitor.io.identity.identify``; a name that fails falls back to a
   plain one so that the rejection can be recorded), then ``load_mask`` with size limits; finally the
   file is looked at again: a size or mtime that moved means the hash and the validation may describe
   two contents (``Examination.changed``).

Pure file I/O, no database and no threads; what to do with a file that may still be being written
(``Problem.transient``) or that changed is the caller's decision.

Example::

    found = examine(path, root, path.stat(), ingest=IngestConfig(), label_map=ACDC, limits=Limits())
    if found is not None and found.problem is None:
        volume = found.volume            # MaskVolume, labels uint8 [z, y, x]
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from monitor.errors import InvalidMask
from monitor.io.files import file_sha256
from monitor.io.identity import IngestConfig, MaskIdentity, SidecarError, identify
from monitor.io.layouts import mask_stem, normalise_case_key
from monitor.io.nifti import Limits, MaskVolume, load_mask
from monitor.qc.labels import LabelMap

__all__ = [
    "REASON_BAD_NAME",
    "REASON_MISSING",
    "TRANSIENT_REASONS",
    "Examination",
    "Fingerprint",
    "Problem",
    "examine",
    "fallback_identity",
    "fingerprint",
]

#: The file name matches none of the name patterns (or gives no usable phase or folder names).
REASON_BAD_NAME = "bad_name"
#: The file vanished before it could be read (``load_mask``'s reason for a missing file).
REASON_MISSING = "missing"
#: Loader reasons that a file still being written can give (a sidecar that does not parse may be one
#: too): a watcher retries such a file until it stops changing; a batch over an archive takes them as
#: final.
TRANSIENT_REASONS: frozenset[str] = frozenset(
    {"empty_file", "corrupt", "truncated", "not_nifti", "unreadable"}
)


@dataclass(frozen=True, slots=True)
class Problem:
    """Why a file cannot be scored."""

    reason: str  #: stable reason code (``InvalidMask.reason``, ``bad_name``, ``bad_sidecar``, ...)
    detail: str  #: what is wrong, for a person (no patient data above what the path says)
    transient: bool  #: True when a file still being written could give it (``TRANSIENT_REASONS``)


@dataclass(frozen=True, slots=True, kw_only=True)
class Fingerprint:
    """A file's content hash, or why it must not be opened (then the hash is a placeholder)."""

    content_hash: str  #: SHA-256 hex of the bytes, or ``"<reason>:<size>:<mtime_ns>"``
    problem: Problem | None  #: set when the file is refused or cannot be read


@dataclass(frozen=True, slots=True, kw_only=True)
class Examination:
    """One complete file: hashed, named and validated."""

    path: Path  #: the file as given
    size: int  #: bytes, when it was examined
    mtime_ns: int  #: modification time, ns
    inode: int  #: inode number
    content_hash: str  #: ``Fingerprint.content_hash``
    identity: MaskIdentity  #: case key, phase, segmenter (a fallback name when naming failed)
    problem: Problem | None  #: why it cannot be scored; None for a valid mask
    volume: MaskVolume | None  #: the validated mask (None with a problem)
    changed: tuple[int, int] | None  #: (size, mtime_ns) seen afterwards when they moved; else None


def fingerprint(path: Path, root: Path, st: os.stat_result, *, confined: bool = True) -> Fingerprint:
    """The content hash of the file at ``path`` (seen as ``st``), or why it is refused unopened.

    Args:
        root: the folder the file was found under (resolved).
        confined: a symbolic link must resolve inside ``root`` (a watched folder); False for a path a
            person listed (a manifest), which may be a link into another store.
    Raises: FileNotFoundError when the file vanished.
    """
    refusal = _refuse_special(path, root if confined else None, st)
    if refusal is not None:  # never open a FIFO, a device or a file outside the folder
        return Fingerprint(content_hash=f"{refusal.reason}:{st.st_size}:{st.st_mtime_ns}", problem=refusal)
    try:
        return Fingerprint(content_hash=file_sha256(path), problem=None)
    except FileNotFoundError:
        raise
    except OSError as exc:
        detail = f"the file cannot be read: {exc.strerror or type(exc).__name__}"
        return Fingerprint(
            content_hash=f"unreadable:{st.st_size}:{st.st_mtime_ns}",
            problem=Problem("unreadable", detail, True),
        )


def examine(
    path: Path,
    root: Path,
    st: os.stat_result,
    *,
    ingest: IngestConfig,
    label_map: LabelMap,
    limits: Limits,
    known: Fingerprint | None = None,
) -> Examination | None:
    """Hash, name and validate the complete file at ``path``; None when it vanished meanwhile.

    Args:
        root: the folder the file was found under (folders below it name the segmenter and version,
            ``ingest.folder_fields``).
        st: the file's ``stat`` before the examination; compared with a second one afterwards.
        known: the file's ``fingerprint`` when the caller already took it (not hashed again).
    Returns: the examination; its ``problem`` is the first reason found (refusal or unreadable bytes,
        then a bad sidecar or name, then the loader's ``InvalidMask`` reason).
    """
    try:
        found = known if known is not None else fingerprint(path, root, st)
    except FileNotFoundError:
        return None
    problem = found.problem
    try:
        identity = identify(path, root, ingest)
    except SidecarError as exc:
        identity = fallback_identity(path, root, ingest)
        problem = problem or Problem(exc.reason, exc.detail, True)
    except ValueError as exc:
        identity = fallback_identity(path, root, ingest)
        problem = problem or Problem(REASON_BAD_NAME, str(exc), False)
    volume: MaskVolume | None = None
    if problem is None:
        try:
            volume = load_mask(path, label_map, limits)
        except InvalidMask as exc:
            if exc.reason == REASON_MISSING:
                return None
            problem = Problem(exc.reason, exc.detail, exc.reason in TRANSIENT_REASONS)
    try:  # the hash and the validation must describe one content
        after = path.stat()
    except OSError:
        return None
    moved = (after.st_size, after.st_mtime_ns) != (st.st_size, st.st_mtime_ns)
    return Examination(
        path=path,
        size=st.st_size,
        mtime_ns=st.st_mtime_ns,
        inode=st.st_ino,
        content_hash=found.content_hash,
        identity=identity,
        problem=problem,
        volume=volume if problem is None else None,
        changed=(after.st_size, after.st_mtime_ns) if moved else None,
    )


def fallback_identity(path: Path, root: Path, ingest: IngestConfig) -> MaskIdentity:
    """A name for a file whose own naming failed (bad name or sidecar), so that its rejection can be
    recorded: folders and name without the sidecar, else the plain stem and the default segmenter."""
    try:
        return identify(path, root, ingest, use_sidecar=False)
    except ValueError:
        return MaskIdentity(
            case_key=normalise_case_key(mask_stem(path.name))[:200] or "unnamed",
            phase=None,
            segmenter_name=ingest.default_segmenter,
            segmenter_version=ingest.default_version,
        )


def _refuse_special(path: Path, root: Path | None, st: os.stat_result) -> Problem | None:
    """Why a candidate must not be opened, or None: it is not a regular file (a FIFO would block the
    reader, a device never ends), or it is a symbolic link that leads outside ``root`` (when given)."""
    if not stat.S_ISREG(st.st_mode):
        return Problem("not_a_file", "path is not a regular file (a FIFO, socket or device)", False)
    if root is None:
        return None
    try:  # the file itself or a folder on its way may be a link
        target = path.resolve(strict=True)
    except FileNotFoundError:
        return None  # gone: hashing finds that out
    except (OSError, RuntimeError):
        return Problem("outside_folder", "symbolic link that cannot be resolved", False)
    if not target.is_relative_to(root):
        return Problem("outside_folder", "symbolic link to a file outside the watched folder", False)
    return None
