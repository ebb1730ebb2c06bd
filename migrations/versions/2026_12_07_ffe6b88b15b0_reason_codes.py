"""Store flag reasons as codes: ``structure_scores.reasons`` holds reason codes instead of prose.

Until now each flagged structure row held the sentences of ``monitor.flags`` (``"LV pHD 61.2 mm > 50
mm"``), and the dashboard parsed them back with a regular expression. From this revision the JSON list
holds the stable codes of ``monitor.qc.reasons.ReasonCode`` (``missing``, ``vanished``, ``phd_high``,
``pdsc_low``); the text is rendered from the code and the row's pDSC and pHD. The column and its type
are unchanged, so later checks add codes without another migration.

Upgrade: each sentence becomes its code; a string that is already a code, or that matches no known
sentence, is kept as it is. Downgrade: each code becomes its sentence again, with the row's pDSC and pHD
and the default thresholds (50 mm, 0.5): a deployment that flagged with other thresholds gets the
default figures in the text (the code and the row's numbers are exact either way).

Only rows flagged suspicious or erroneous carry reasons; they are rewritten in pages of 2,000 rows by
id, so the migration holds no large result set (about 10 s per million flagged rows on SQLite).

Revision ID: ffe6b88b15b0
Revises: 61c25f1ea3a9
Create Date: 2026-12-07 13:11:34+00:00
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "ffe6b88b15b0"
down_revision: str | Sequence[str] | None = "61c25f1ea3a9"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen here on purpose: a migration must not change when the package's texts or codes do.
_SENTENCE = re.compile(r"^(?P<structure>LV|RV|MYO) (?P<what>missing|vanished|pHD|pDSC)\b")
_CODE_OF = {"missing": "missing", "vanished": "vanished", "pHD": "phd_high", "pDSC": "pdsc_low"}
_DEFAULT_HD_MM = 50.0
_DEFAULT_DICE = 0.5
_PAGE = 2000

_scores = sa.table(
    "structure_scores",
    sa.column("id", sa.BigInteger()),
    sa.column("structure", sa.String()),
    sa.column("pdsc", sa.Float()),
    sa.column("phd_mm", sa.Float()),
    sa.column("flag", sa.String()),
    sa.column("reasons", sa.JSON()),
)


def _to_code(reason: str, row: Any) -> str:
    match = _SENTENCE.match(reason)
    return _CODE_OF[match["what"]] if match else reason


def _to_sentence(reason: str, row: Any) -> str:
    s = row.structure
    pdsc = math.nan if row.pdsc is None else row.pdsc
    phd = math.nan if row.phd_mm is None else row.phd_mm
    return {
        "missing": f"{s} missing from the mask",
        "vanished": f"{s} vanished from the pseudo ground truth (shape not recognised)",
        "phd_high": f"{s} pHD {phd:.1f} mm > {_DEFAULT_HD_MM:g} mm",
        "pdsc_low": f"{s} pDSC {pdsc:.2f} < {_DEFAULT_DICE:g}",
    }.get(reason, reason)


def _rewrite(convert: Callable[[str, Any], str]) -> None:
    """Apply ``convert`` to every reason of the flagged rows, a page of rows at a time."""
    connection = op.get_bind()
    update = (
        sa.update(_scores)
        .where(_scores.c.id == sa.bindparam("row_id"))
        .values(reasons=sa.bindparam("new_reasons"))
    )
    last = 0
    while True:
        rows = connection.execute(
            sa.select(_scores.c.id, _scores.c.structure, _scores.c.pdsc, _scores.c.phd_mm, _scores.c.reasons)
            .where(_scores.c.flag != "ok", _scores.c.id > last)
            .order_by(_scores.c.id)
            .limit(_PAGE)
        ).all()
        if not rows:
            return
        changed = []
        for row in rows:
            old = list(row.reasons or [])
            new = [convert(str(reason), row) for reason in old]
            if new != old:
                changed.append({"row_id": row.id, "new_reasons": new})
        if changed:
            connection.execute(update, changed)
        last = rows[-1].id


def upgrade() -> None:
    _rewrite(_to_code)


def downgrade() -> None:
    _rewrite(_to_sentence)
