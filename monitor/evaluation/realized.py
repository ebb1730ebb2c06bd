"""Realized metrics of labelled predictions, recorded in a results database: the real Dice and HD (mm)
of each prediction file that the database holds as scored, found by the file's content hash (the
daemon's and the backfill's identity of a file), for the dashboard's "Estimated vs realized" page.

``cmr-monitor calibrate --db`` and ``evaluate --db`` record what they computed against the ground
truth; the demo records its labelled phantoms. ``realized_from_cases`` turns an evaluation's cases
table into the per-file metrics that ``record_realized_files`` takes.

Example::

    cases, _ = evaluate_cases(pairing.pairs, scorer)
    done = record_realized_files("sqlite:///cmr-monitor.db", realized_from_cases(cases), source="evaluate")
    print(len(done.recorded), len(done.not_in_database))
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from sqlalchemy.orm import Session

from monitor.evaluation.pairing import GROUND_TRUTH
from monitor.io.files import file_sha256
from monitor.qc.labels import Structure
from monitor.store import file_ids_by_hash, open_session, record_realized

__all__ = ["RealizedByFile", "RecordedRealized", "realized_from_cases", "record_realized_files"]

#: Prediction file path -> structure -> (real Dice 0-1, real HD mm); nan where undefined.
RealizedByFile = Mapping[str, Mapping[Structure, tuple[float, float]]]


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordedRealized:
    """What ``record_realized_files`` did, by prediction file path."""

    recorded: tuple[str, ...]  #: files scored in the database (by content hash), their metrics stored
    not_in_database: tuple[str, ...]  #: files whose bytes the database holds no scored file of


def record_realized_files(
    session_or_url: Session | str, realized: RealizedByFile, *, source: str
) -> RecordedRealized:
    """Record the real metrics of the prediction files that are scored in the database, found by the
    SHA-256 of their bytes; a file the database does not hold is counted, not an error.

    Args:
        session_or_url: a session on a migrated results database, or its URL.
        realized: per prediction file, its real (Dice, HD mm) per structure.
        source: one of ``monitor.store.REALIZED_SOURCES``.
    Returns: the paths recorded and the paths not found.
    Raises: OSError when a file cannot be read; ValueError for an unknown source.
    """
    if not isinstance(session_or_url, Session):
        with open_session(session_or_url) as session:
            return record_realized_files(session, realized, source=source)
    hashes = {path: file_sha256(Path(path)) for path in realized}
    ids = file_ids_by_hash(session_or_url, sorted(set(hashes.values())))
    recorded = []
    for path, digest in hashes.items():
        if digest in ids:
            record_realized(session_or_url, ids[digest], realized[path], source=source)
            recorded.append(path)
    return RecordedRealized(
        recorded=tuple(recorded), not_in_database=tuple(p for p in hashes if hashes[p] not in ids)
    )


def realized_from_cases(cases: pd.DataFrame) -> dict[str, dict[Structure, tuple[float, float]]]:
    """Per prediction file, its real (Dice, HD mm) per structure, from a cases table
    (``evaluate_cases``: ``pred_file``, ``structure``, ``dice``, ``hd_mm``); the ground truths scored
    as the pseudo-segmenter ``ground_truth`` are left out (they are no prediction)."""
    out: dict[str, dict[Structure, tuple[float, float]]] = {}
    predictions = cases[cases["segmenter"] != GROUND_TRUTH]
    for path, structure, dice, hd_mm in predictions[["pred_file", "structure", "dice", "hd_mm"]].itertuples(
        index=False
    ):
        out.setdefault(str(path), {})[Structure(structure)] = (float(dice), float(hd_mm))
    return out
