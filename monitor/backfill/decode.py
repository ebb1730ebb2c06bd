"""The decode stage: each file of a batch of entries hashed, skipped when stored, else named and validated.

Runs in Ray tasks on CPUs (``decode_batch`` is the function handed to ``map_batches``), with the daemon's
per-file examination (``monitor.io.examine``): the same content hash, identity and rejection reasons.
A content the database already holds (its (path, content hash) in ``known``) is skipped before it is
validated, unless its score is stale (scored under another checkpoint or calibration version than this
run's) and ``DecodeOptions.rescore_stale``: then it is examined and scored again like a new file, its
row marked ``stale``; a stale content that is kept is skipped with the ``reason`` ``SKIPPED_STALE``.
A file of an archive is complete, so a reason a watcher would wait on (``Problem.transient``)
is final here; a file that changes while it is examined is rejected ``content_changed`` (a returning
reason: the daemon takes its new content when it sees it).

A valid mask is paired with its MR image as in the daemon's worker (``monitor.io.images.pair_image``
with the same settings: the manifest's ``image`` or the sidecar's first, then the layout rules; the
geometry check; ``DecodeOptions.image_evidence``), so the scores, evidence and flags of a file are the
daemon's. The image array travels with the volume to the scoring actors.

One output row per input row (columns ``OUTPUT_COLUMNS``): ``outcome`` is ``score`` (``payload`` holds
the validated ``MaskVolume`` and its ``PairedImage``), ``rejected`` (``reason``, ``detail``) or
``skipped``; ``stale`` is true for a stale stored content that is being rescored.

Payloads (the validated volume here, the scores and arrays after scoring) travel between the stages as
bytes (``pack``/``unpack``: pickle, between this package's own Ray workers only, never from a file):
Ray Data's Arrow blocks take no mixed Python objects.
"""

from __future__ import annotations

import json
import pickle
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from monitor.io.examine import REASON_MISSING, Examination, examine, fallback_identity, fingerprint
from monitor.io.identity import IngestConfig, MaskIdentity
from monitor.io.images import pair_image
from monitor.io.nifti import Limits
from monitor.qc.labels import LabelMap
from monitor.store import REJECTION_CONTENT_CHANGED

__all__ = [
    "IDENTITY_COLUMNS",
    "OUTCOME_REJECTED",
    "OUTCOME_SCORE",
    "OUTCOME_SKIPPED",
    "OUTPUT_COLUMNS",
    "SKIPPED_STALE",
    "DecodeOptions",
    "decode_batch",
    "decode_entry",
    "pack",
    "unpack",
]

OUTCOME_SCORE = "score"
OUTCOME_REJECTED = "rejected"
OUTCOME_SKIPPED = "skipped"
#: ``reason`` of a skipped row whose stored score is stale (another checkpoint or calibration version
#: than this run's) and kept (``DecodeOptions.rescore_stale`` off).
SKIPPED_STALE = "stale"
#: Identity columns of every output row (``MaskIdentity`` fields).
IDENTITY_COLUMNS: tuple[str, ...] = (
    "case_key",
    "phase",
    "segmenter_name",
    "segmenter_version",
    "site",
    "scanner",
    "image_path",
)
#: Columns of the decode stage's output.
OUTPUT_COLUMNS: tuple[str, ...] = (
    "path",
    "content_hash",
    *IDENTITY_COLUMNS,
    "received_at",
    "outcome",
    "reason",
    "detail",
    "payload",
    "stale",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class DecodeOptions:
    """How files are named and validated (the daemon's settings)."""

    ingest: IngestConfig  #: name patterns, folder meanings, default segmenter
    label_map: LabelMap  #: label values of the masks
    limits: Limits  #: size limits applied before voxels are read (the masks' and their images')
    #: pair each mask with its MR image and pass it as evidence (the daemon's
    #: ``Settings.image_evidence and Settings.evidence``); False records ``image_reason = disabled``
    image_evidence: bool = True
    #: score a stale stored content again (its row is rescored in place); False skips it
    rescore_stale: bool = True


def decode_entry(
    path: str,
    root: str,
    overrides: Mapping[str, str],
    options: DecodeOptions,
    known: Mapping[str, bool],
    *,
    confined: bool = True,
) -> dict[str, Any]:
    """One output row for the mask at ``path`` (module docstring).

    Args:
        root: the folder it was found under (resolved).
        overrides: identity fields from the manifest (they win over name, folders and sidecar).
        known: the content hashes the database holds for this path -> True when their score is stale
            (another checkpoint or calibration version than this run's: ``KnownFile.stale``).
        confined: a symbolic link must resolve inside ``root`` (``monitor.io.examine.fingerprint``).
    """
    received_at = time.time()
    file = Path(path)
    base = Path(root)
    try:
        st = file.stat()
        found = fingerprint(file, base, st, confined=confined)
    except FileNotFoundError:
        return _rejected(
            path, f"{REASON_MISSING}:0:0", file, base, options, overrides, received_at,
            REASON_MISSING, "the file does not exist (it was listed but is not there)",
        )  # fmt: skip
    except OSError as exc:
        return _rejected(
            path, "unreadable:0:0", file, base, options, overrides, received_at,
            "unreadable", f"the file cannot be read: {exc.strerror or type(exc).__name__}",
        )  # fmt: skip
    stale = known.get(found.content_hash, False)
    if found.content_hash in known and not (stale and options.rescore_stale):
        row = _row(path, found.content_hash, fallback_identity(file, base, options.ingest), received_at)
        return {**row, "outcome": OUTCOME_SKIPPED, "reason": SKIPPED_STALE if stale else None}
    examined = examine(
        file, base, st, ingest=options.ingest, label_map=options.label_map, limits=options.limits, known=found
    )
    if examined is None:
        return _rejected(
            path, f"{REASON_MISSING}:{st.st_size}:{st.st_mtime_ns}", file, base, options, overrides,
            received_at, REASON_MISSING, "the file vanished while it was read",
        )  # fmt: skip
    return {**_outcome(examined, overrides, received_at, options), "stale": stale}


def decode_batch(
    batch: pd.DataFrame, *, options: DecodeOptions, known: Mapping[str, Mapping[str, bool]]
) -> pd.DataFrame:
    """``decode_entry`` for each row of a batch of entries (columns ``path``, ``root``, ``overrides``:
    a JSON object; ``confined``; ``seq``, the entry's number in the run, is kept); ``known`` maps a
    path to its stored content hashes (``decode_entry``)."""
    confined = batch["confined"] if "confined" in batch else [True] * len(batch)
    rows = [
        decode_entry(path, root, json.loads(overrides), options, known.get(path, {}), confined=bool(c))
        for path, root, overrides, c in zip(
            batch["path"], batch["root"], batch["overrides"], confined, strict=True
        )
    ]
    out = pd.DataFrame(rows, columns=list(OUTPUT_COLUMNS))
    if "seq" in batch:
        out["seq"] = batch["seq"].to_numpy()
    return out


def _outcome(
    examined: Examination, overrides: Mapping[str, str], received_at: float, options: DecodeOptions
) -> dict[str, Any]:
    identity = _apply(examined.identity, overrides)
    row = _row(str(examined.path), examined.content_hash, identity, received_at)
    if examined.changed is not None:
        detail = "the file changed while it was read; its new content is taken by a later run"
        return {**row, "outcome": OUTCOME_REJECTED, "reason": REJECTION_CONTENT_CHANGED, "detail": detail}
    if examined.problem is not None:
        problem = examined.problem
        return {**row, "outcome": OUTCOME_REJECTED, "reason": problem.reason[:64], "detail": problem.detail}
    volume = examined.volume
    paired = pair_image(
        volume, image_path=identity.image_path, limits=options.limits, enabled=options.image_evidence
    )
    return {**row, "outcome": OUTCOME_SCORE, "payload": pack((volume, paired))}


def _rejected(
    path: str,
    content_hash: str,
    file: Path,
    root: Path,
    options: DecodeOptions,
    overrides: Mapping[str, str],
    received_at: float,
    reason: str,
    detail: str,
) -> dict[str, Any]:
    identity = _apply(fallback_identity(file, root, options.ingest), overrides)
    row = _row(path, content_hash, identity, received_at)
    return {**row, "outcome": OUTCOME_REJECTED, "reason": reason, "detail": detail}


def _apply(identity: MaskIdentity, overrides: Mapping[str, str]) -> MaskIdentity:
    """The identity with the manifest's fields."""
    values = {name: getattr(identity, name) for name in IDENTITY_COLUMNS}
    values.update(overrides)
    return MaskIdentity(**values)


def _row(path: str, content_hash: str, identity: MaskIdentity, received_at: float) -> dict[str, Any]:
    return {
        "path": path,
        "content_hash": content_hash,
        **{name: getattr(identity, name) for name in IDENTITY_COLUMNS},
        "received_at": received_at,
        "outcome": "",
        "reason": None,
        "detail": None,
        "payload": None,
        "stale": False,
    }


def pack(value: Any) -> bytes:
    """``value`` as bytes for the next stage (see the module docstring)."""
    return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)


def unpack(payload: bytes) -> Any:
    """The value ``pack`` gave bytes of (only ever bytes made by this package's own stages)."""
    return pickle.loads(payload)
