"""DataFrame plumbing of the read queries: rows of a Core select as a frame, names of the groups,
sorting and the dtypes of an empty result. Private to ``monitor.store``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from monitor.qc.labels import STRUCTURES
from monitor.store.models import Segmenter

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["STRUCTURE_RANK", "dialect", "empty", "fetch", "finish", "segmenter_names"]

#: Structure -> its place in reporting order (LV, RV, MYO).
STRUCTURE_RANK = {s: i for i, s in enumerate(STRUCTURES)}


def dialect(session: Session) -> str:
    return session.get_bind().dialect.name


def fetch(session: Session, statement: sa.Select[Any]) -> pd.DataFrame:
    """Rows of a Core select as a DataFrame, one column per selected label.

    Runs on the session's connection (Core execution, no ORM row loading) and hands pandas plain
    columns: building a frame from SQLAlchemy ``Row`` objects is several times slower.
    """
    import pandas as pd

    result = session.connection().execute(statement)
    names = list(result.keys())
    columns = list(zip(*result.all(), strict=True)) or [()] * len(names)
    return pd.DataFrame(dict(zip(names, columns, strict=True)), columns=names)


def segmenter_names(session: Session) -> dict[int, tuple[str, str]]:
    """Segmenter id -> (name, version)."""
    rows = session.execute(sa.select(Segmenter.id, Segmenter.name, Segmenter.version))
    return {row[0]: (row[1], row[2]) for row in rows}


def finish(
    out: pd.DataFrame,
    keys: Sequence[str],
    segmenters: dict[int, tuple[str, str]],
    columns: list[str],
    *,
    then: Sequence[str] = (),
) -> pd.DataFrame:
    """Name the groups (bucket start in UTC, segmenter name and version), sort and order the columns."""
    import pandas as pd

    if "bucket" in out:
        out["bucket_start"] = pd.to_datetime(out["bucket"], utc=True)
    elif "bucket_start" in columns:
        out["bucket_start"] = pd.Series(pd.NaT, index=out.index, dtype="datetime64[ns, UTC]")
    if "segmenter" in keys:
        named = [segmenters[i] for i in out["segmenter_id"]]
        out["segmenter_name"] = [n for n, _ in named]
        out["segmenter_version"] = [v for _, v in named]
    order = [c for c in ("bucket_start", "segmenter_name", "segmenter_version", "site") if c in columns]
    if "structure" in out:
        out["_structure"] = out["structure"].map({str(s): i for s, i in STRUCTURE_RANK.items()})
        order.append("_structure")
    out = out.sort_values([*order, *then], ignore_index=True, na_position="last", kind="stable")
    return out.reindex(columns=columns)


def empty(columns: list[str]) -> pd.DataFrame:
    """An empty result with the columns and dtypes of a non-empty one."""
    import pandas as pd

    text = {"segmenter_name", "segmenter_version", "site", "structure", "metric"}
    counts = {
        "scored",
        "ok",
        "suspicious",
        "erroneous",
        "flagged",
        "rejected",
        "pdsc_n",
        "phd_mm_n",
        "bin",
        "files",
    }

    def dtype(column: str) -> str:
        if column == "bucket_start":
            return "datetime64[ns, UTC]"
        return "object" if column in text else "int64" if column in counts else "float64"

    return pd.DataFrame({c: pd.Series(dtype=dtype(c)) for c in columns})
