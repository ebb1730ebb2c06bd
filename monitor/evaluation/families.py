"""Failure families in the evaluation: the manifest of a failure set, and the per-family table.

A failure set (``bench/failure_set.py``, edits of ``monitor.sim.failures``) is a folder of prediction
sets, one per family and strength, laid out like a segmenter's predictions, and a manifest
``families.json`` naming each set's family, strength and whether it is *clearly wrong*. ``cmr-monitor
evaluate --families families.json`` scores every set as a segmenter of that name and adds
``family_table``: volumes flagged per set (the refined flags and the paper's plain ones), the real DSC
and HD (mm) next to the pseudo ones, plain and refined.

Manifest (JSON)::

    {"format": "cmr-monitor-failure-set", "version": 1, "sets": [
        {"name": "missing_basal-2", "family": "missing_basal", "strength": 2, "unit": "slices",
         "title": "basal slices missing", "clearly_wrong": true, "needs_image": false,
         "folder": "missing_basal/2", "n_volumes": 160, "not_applicable": []}, ...]}

``folder`` is relative to the manifest's folder.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from monitor.evaluation.markdown import fmt, md_table
from monitor.evaluation.statistics import FAILURE_DICE, FAILURE_HD_MM, failures

__all__ = [
    "MANIFEST_FORMAT",
    "MANIFEST_NAME",
    "FamilySet",
    "families_markdown",
    "family_table",
    "read_manifest",
    "volume_table",
    "write_manifest",
]

#: File name of the manifest written beside the sets.
MANIFEST_NAME = "families.json"
#: Value of the manifest's ``format`` key.
MANIFEST_FORMAT = "cmr-monitor-failure-set"
#: Share of a clearly-wrong family that must be flagged (issue 13).
CLEARLY_WRONG_AIM = 0.9


@dataclass(frozen=True, slots=True, kw_only=True)
class FamilySet:
    """One family at one strength: a folder of edited masks, evaluated as a segmenter."""

    name: str  #: segmenter name in the report, e.g. ``missing_basal-2``
    family: str  #: family name (``monitor.sim.failures.FAMILIES``)
    strength: float  #: in ``unit``
    unit: str  #: ``slices``, ``mm``, ``px`` or "" (a single strength)
    title: str  #: one line for a person
    clearly_wrong: bool  #: in the issue's clearly-wrong subset
    needs_image: bool  #: clearly wrong only when the MR image was used
    folder: Path  #: the masks (absolute once read)
    n_volumes: int = 0  #: volumes written
    not_applicable: int = 0  #: ground-truth volumes the edit could not be made on


def write_manifest(path: Path | str, sets: Sequence[FamilySet], **extra: Any) -> Path:
    """Write ``families.json`` for ``sets`` (folders stored relative to the manifest's folder).

    Args:
        path: the manifest file.
        sets: the sets written.
        extra: more top-level keys (e.g. ``source``, ``seed``, per-set ``not_applicable`` detail).
    Returns: the path written.
    Raises: ValueError when a set's folder is not inside the manifest's folder.
    """
    path = Path(path)
    root = path.parent.resolve()
    items = []
    for s in sets:
        folder = Path(s.folder).resolve()
        if not folder.is_relative_to(root):
            raise ValueError(f"set {s.name!r}: folder {folder} is not inside {root}")
        items.append(
            {
                "name": s.name,
                "family": s.family,
                "strength": s.strength,
                "unit": s.unit,
                "title": s.title,
                "clearly_wrong": s.clearly_wrong,
                "needs_image": s.needs_image,
                "folder": folder.relative_to(root).as_posix(),
                "n_volumes": s.n_volumes,
                "not_applicable": s.not_applicable,
            }
        )
    body = {"format": MANIFEST_FORMAT, "version": 1, **extra, "sets": items}
    path.write_text(json.dumps(body, indent=2) + "\n")
    return path


def read_manifest(path: Path | str) -> tuple[FamilySet, ...]:
    """The sets of a ``families.json``, folders made absolute.

    Raises: FileNotFoundError for a missing manifest or set folder; ValueError for another format,
        a malformed entry, a folder outside the manifest's folder or a name used twice.
    """
    path = Path(path)
    if path.is_dir():
        path = path / MANIFEST_NAME
    if not path.is_file():
        raise FileNotFoundError(f"failure-set manifest not found: {path}")
    try:
        body = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not JSON: {exc}") from exc
    if not isinstance(body, dict) or body.get("format") != MANIFEST_FORMAT:
        raise ValueError(f"{path} is not a failure-set manifest (format {MANIFEST_FORMAT!r} expected)")
    root = path.parent.resolve()
    sets: list[FamilySet] = []
    for i, item in enumerate(body.get("sets", [])):
        try:
            folder = (root / str(item["folder"])).resolve()
            entry = FamilySet(
                name=str(item["name"]),
                family=str(item["family"]),
                strength=float(item["strength"]),
                unit=str(item.get("unit", "")),
                title=str(item.get("title", item["family"])),
                clearly_wrong=bool(item["clearly_wrong"]),
                needs_image=bool(item.get("needs_image", False)),
                folder=folder,
                n_volumes=int(item.get("n_volumes", 0)),
                not_applicable=int(item.get("not_applicable", 0)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{path}: set {i} is malformed ({exc!r})") from exc
        if not folder.is_relative_to(root):
            raise ValueError(f"{path}: set {entry.name!r} points outside the manifest's folder")
        if not folder.is_dir():
            raise FileNotFoundError(f"{path}: folder of set {entry.name!r} not found: {folder}")
        sets.append(entry)
    names = [s.name for s in sets]
    if len(set(names)) != len(names):
        raise ValueError(f"{path}: a set name is used twice")
    if not sets:
        raise ValueError(f"{path} lists no sets")
    return tuple(sets)


def volume_table(
    cases: pd.DataFrame, *, failure_dice: float = FAILURE_DICE, failure_hd_mm: float = FAILURE_HD_MM
) -> pd.DataFrame:
    """One row per evaluated volume: real and pseudo metrics pooled over its structures.

    Columns: ``segmenter``, ``case``; ``dice`` / ``pdsc`` / ``pdsc_3d`` (mean over structures, nan
    skipped); ``hd_mm`` / ``phd_mm`` / ``phd_mm_3d`` (worst structure, mm); ``failure`` (any structure
    a real failure); ``flagged`` (volume flag not ok), ``flagged_plain`` (the paper's flag not ok),
    ``flagged_review`` (not ok had every failed evidence check raised its code: the review mode);
    ``codes`` (reason codes of its structures, ``;``-separated, sorted).
    """
    data = cases.copy()
    data["failure"] = failures(data, failure_dice=failure_dice, failure_hd_mm=failure_hd_mm)
    grouped = data.groupby(["segmenter", "case"], sort=False)
    out = grouped.agg(
        dice=("dice", "mean"),
        pdsc=("pdsc", "mean"),
        pdsc_3d=("pdsc_3d", "mean"),
        hd_mm=("hd_mm", "max"),
        phd_mm=("phd_mm", "max"),
        phd_mm_3d=("phd_mm_3d", "max"),
        failure=("failure", "max"),
        volume_flag=("volume_flag", "first"),
        volume_flag_plain=("volume_flag_plain", "first"),
        volume_flag_review=("volume_flag_review", "first"),
        codes=("reason_codes", lambda c: ";".join(sorted({x for v in c for x in str(v).split(";") if x}))),
    ).reset_index()
    out["flagged"] = out["volume_flag"] != "ok"
    out["flagged_plain"] = out["volume_flag_plain"] != "ok"
    out["flagged_review"] = out["volume_flag_review"] != "ok"
    return out


def _mean(values: pd.Series) -> float:
    v = values.to_numpy(float)
    return float(np.nanmean(v)) if np.isfinite(v).any() else math.nan


def _median(values: pd.Series) -> float:
    v = values.to_numpy(float)
    return float(np.nanmedian(v)) if np.isfinite(v).any() else math.nan


def family_table(
    cases: pd.DataFrame,
    sets: Sequence[FamilySet],
    *,
    failure_dice: float = FAILURE_DICE,
    failure_hd_mm: float = FAILURE_HD_MM,
) -> dict[str, Any]:
    """Volumes flagged per failure set, and the real metrics next to the pseudo ones (plain, refined).

    A set that ``needs_image`` counts as clearly wrong only when every one of its volumes was scored
    with its MR image (column ``image_used``).

    Args:
        cases: the cases table (``evaluate_cases``), with the sets' names as segmenters.
        sets: from ``read_manifest``.
    Returns: ``{"sets": {name: {family, strength, unit, title, clearly_wrong, n_volumes, flagged,
        flagged_rate, flagged_plain, flagged_plain_rate, flagged_review, flagged_review_rate, real_failures, image_used, dice, pdsc,
        pdsc_3d, hd_mm (median of the worst structure), phd_mm, phd_mm_3d (medians), codes (the five
        commonest reason codes: volumes)}}, "clearly_wrong": {n_volumes, flagged, flagged_rate,
        flagged_plain, flagged_plain_rate, flagged_review, flagged_review_rate, lowest_set, lowest_rate,
        sets_below_aim, sets_below_aim_review, aim}}``. The review columns count a volume as flagged
        when any failed evidence check would raise its code (``evidence_flags="all"``).
    """
    volumes = volume_table(cases, failure_dice=failure_dice, failure_hd_mm=failure_hd_mm)
    images = cases.groupby("segmenter", sort=False)["image_used"].agg(lambda v: bool(v.astype(bool).all()))
    out: dict[str, dict[str, Any]] = {}
    for s in sets:
        rows = volumes[volumes["segmenter"] == s.name]
        n = len(rows)
        image = bool(images.get(s.name, False))
        codes = Counter(c for v in rows["codes"] for c in v.split(";") if c)
        out[s.name] = {
            "family": s.family,
            "strength": s.strength,
            "unit": s.unit,
            "title": s.title,
            "clearly_wrong": s.clearly_wrong and (image or not s.needs_image),
            "n_volumes": n,
            "not_applicable": s.not_applicable,
            "image_used": image,
            "flagged": int(rows["flagged"].sum()),
            "flagged_rate": float(rows["flagged"].mean()) if n else math.nan,
            "flagged_plain": int(rows["flagged_plain"].sum()),
            "flagged_plain_rate": float(rows["flagged_plain"].mean()) if n else math.nan,
            "flagged_review": int(rows["flagged_review"].sum()),
            "flagged_review_rate": float(rows["flagged_review"].mean()) if n else math.nan,
            "real_failures": int(rows["failure"].sum()),
            "dice": _mean(rows["dice"]),
            "pdsc": _mean(rows["pdsc"]),
            "pdsc_3d": _mean(rows["pdsc_3d"]),
            "hd_mm": _median(rows["hd_mm"]),
            "phd_mm": _median(rows["phd_mm"]),
            "phd_mm_3d": _median(rows["phd_mm_3d"]),
            "codes": dict(codes.most_common(5)),
        }
    return {"sets": out, "clearly_wrong": _clearly_wrong(out, volumes)}


def _clearly_wrong(table: Mapping[str, Mapping[str, Any]], volumes: pd.DataFrame) -> dict[str, Any]:
    names = [k for k, v in table.items() if v["clearly_wrong"] and v["n_volumes"]]
    rows = volumes[volumes["segmenter"].isin(names)]
    rates = {k: table[k]["flagged_rate"] for k in names}
    review = {k: table[k]["flagged_review_rate"] for k in names}
    lowest = min(rates, key=rates.__getitem__) if rates else None
    n = len(rows)
    return {
        "n_volumes": n,
        "flagged": int(rows["flagged"].sum()),
        "flagged_rate": float(rows["flagged"].mean()) if n else math.nan,
        "flagged_plain": int(rows["flagged_plain"].sum()),
        "flagged_plain_rate": float(rows["flagged_plain"].mean()) if n else math.nan,
        "flagged_review": int(rows["flagged_review"].sum()),
        "flagged_review_rate": float(rows["flagged_review"].mean()) if n else math.nan,
        "lowest_set": lowest,
        "lowest_rate": rates[lowest] if lowest else math.nan,
        "sets_below_aim": sorted(k for k, r in rates.items() if r < CLEARLY_WRONG_AIM),
        "sets_below_aim_review": sorted(k for k, r in review.items() if r < CLEARLY_WRONG_AIM),
        "aim": CLEARLY_WRONG_AIM,
    }


def families_markdown(summary: Mapping[str, Any]) -> list[str]:
    """The report's "Failure families" section (nothing when the summary has no ``families``)."""
    table = summary.get("families")
    if not table:
        return []
    lines = [
        "## Failure families",
        "",
        "Edits of the ground truth, one set per family and strength. Flagged: volumes whose flag is not "
        "ok, with the evidence (refined), in review mode (every failed evidence check raising its code, "
        "`CMR_MONITOR_EVIDENCE_FLAGS=all`) and with the paper's plain thresholds. DSC and pDSC: means over "
        "volumes of the structures' mean; HD and pHD: medians over volumes of the worst structure (mm). "
        "Clearly wrong (*): the issue's subset, which should be flagged at least "
        f"{100 * CLEARLY_WRONG_AIM:.0f} % of the time.",
        "",
    ]
    rows = []
    for name, s in table["sets"].items():
        rows.append(
            [
                f"{name} *" if s["clearly_wrong"] else name,
                s["n_volumes"],
                f"{s['flagged']} ({fmt(s['flagged_rate'], 2)})",
                f"{s['flagged_review']} ({fmt(s['flagged_review_rate'], 2)})",
                f"{s['flagged_plain']} ({fmt(s['flagged_plain_rate'], 2)})",
                s["dice"],
                s["pdsc"],
                s["pdsc_3d"],
                fmt(s["hd_mm"], 1),
                fmt(s["phd_mm"], 1),
                fmt(s["phd_mm_3d"], 1),
                ", ".join(f"{c} {n}" for c, n in s["codes"].items()),
            ]
        )
    lines += md_table(
        [
            "set",
            "volumes",
            "flagged",
            "flagged review",
            "flagged plain",
            "DSC",
            "pDSC plain",
            "pDSC refined",
            "HD mm",
            "pHD plain",
            "pHD refined",
            "commonest reasons (volumes)",
        ],
        rows,
    )
    cw = table["clearly_wrong"]
    lines += [
        f"Clearly wrong: {cw['flagged']} of {cw['n_volumes']} volumes flagged ({fmt(cw['flagged_rate'])}; "
        f"review {cw['flagged_review']}, {fmt(cw['flagged_review_rate'])}; "
        f"plain {cw['flagged_plain']}, {fmt(cw['flagged_plain_rate'])}); lowest set "
        f"{cw['lowest_set'] or '–'} at {fmt(cw['lowest_rate'])}; below the aim: "
        f"{', '.join(cw['sets_below_aim']) or 'none'} (review mode: "
        f"{', '.join(cw['sets_below_aim_review']) or 'none'}).",
        "",
    ]
    return lines
