"""Fit the shipped calibration on dev data, cross-validate it, and write its model card.

Reads the pGT cache of ``bench/calibration_cache.py`` (the autoencoder's part), recomputes every score
from mask and pGT with ``monitor.qc.scores.score_volume`` (so the evidence stage, when present, is
included), adds mask and image features and the real metrics against the ground truth, then:

1. out-of-fold estimates by patient (5 folds) and leaving one segmenter out (the ground truths stay
   in training), with r and MAE against the real Dice/HD beside pDSC/pHD, interval coverage, flag
   precision/recall against real failures (Dice < 0.5 or HD > 50 mm), the flag rate on ground truth
   and the segmenter ranking r_s by mean eHD per structure and phase;
2. the final calibration fitted on everything, written to ``monitor/checkpoints/calibration_acdc.skops``;
3. ``monitor/checkpoints/CALIBRATION_CARD.md`` and a JSON of the figures.

Failure-family volumes in the cache (``calibration_cache.py --families``) are training rows only, with
weight ``--families-weight`` (0 leaves them out); every figure is computed on the real segmenters' rows
(and the ground truth's flag rate), never on a family's.

Usage: python bench/fit_calibration.py --cache /work/cache14 [--out monitor/checkpoints]
    [--families-weight 0.1] [--jobs 2]
Dev data only (``../shared/data/acdc-dev``); nothing of it is committed but the fitted file.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import multiprocessing
import pickle
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from monitor.io.calibration import dump_calibration, load_calibration
from monitor.io.nifti import load_image, load_mask
from monitor.qc.calibration.features import feature_rows, image_features, mask_features
from monitor.qc.calibration.figures import estimate_figures, flag_figures, ranking_rho
from monitor.qc.calibration.fit import (
    BoostingParams,
    LabelledRows,
    cross_predict,
    fit_calibration,
    group_folds,
)
from monitor.qc.calibration.fit import failed as real_failures
from monitor.qc.calibration.targets import Target
from monitor.qc.flags import FlagPolicy
from monitor.qc.labels import STRUCTURES, Structure
from monitor.qc.levels import FlagLevel
from monitor.qc.scores import compare_structures, score_volume

POLICY = FlagPolicy()
GROUND_TRUTH = "ground_truth"


def _volume_rows(entry: dict[str, str], with_image: bool) -> list[dict]:
    mask = load_mask(entry["pred"])
    gt = mask if entry["pred"] == entry["gt"] else load_mask(entry["gt"])
    pgt = np.load(entry["pgt"])["pgt"]
    image = load_image(entry["image"])[0] if with_image and entry["image"] else None
    score = score_volume(mask.labels, pgt, mask.spacing_mm, policy=POLICY, slices_scored=0, image=image)
    extra = mask_features(mask.labels, pgt, mask.spacing_mm)
    if image is not None:
        for s, values in image_features(image, mask.labels).items():
            extra[s].update(values)
    features = feature_rows(score, extra)
    real = {c.structure: c for c in compare_structures(mask.labels, gt.labels, gt.spacing_mm)}
    out = []
    for item in score.structures:
        s = item.structure
        out.append(
            {
                "segmenter": entry["segmenter"],
                "family": entry.get("family", ""),
                "patient": entry["patient"],
                "phase": entry["phase"],
                "structure": s.value,
                "present": item.mask_voxels > 0,
                "gt_present": real[s].ref_voxels > 0,
                "dsc": 1.0 if entry["segmenter"] == GROUND_TRUTH else real[s].dice,
                "hd_mm": 0.0 if entry["segmenter"] == GROUND_TRUTH else real[s].hd_mm,
                "features": features[s],
                "score": item,
                "volume": score,
            }
        )
    return out


def _entry_rows(job: tuple[dict[str, str], bool]) -> list[dict]:
    return _volume_rows(*job)


def load_rows(cache: Path, with_image: bool = True, jobs: int = 1) -> list[dict]:
    """Every volume and structure of the cache with features and real metrics (cached in a pickle
    outside the repository, by pGT file: derived dev data, never shipped). Volumes already in the
    pickle are not recomputed, so adding the failure families to a cache only computes theirs."""
    store = cache / f"rows_{'img' if with_image else 'noimg'}.pkl"
    index = list(csv.DictReader((cache / "index.csv").open()))
    known: dict[str, list[dict]] = pickle.loads(store.read_bytes()) if store.is_file() else {}
    if not isinstance(known, dict):  # a list of rows written by an older version of this script
        known = {}
    todo = [entry for entry in index if entry["pgt"] not in known]
    t0 = time.perf_counter()
    with multiprocessing.Pool(jobs) as pool:
        for i, (entry, rows) in enumerate(
            zip(todo, pool.imap(_entry_rows, [(e, with_image) for e in todo], chunksize=4), strict=True)
        ):
            known[entry["pgt"]] = rows
            if i % 100 == 0:
                print(f"features {i}/{len(todo)} {time.perf_counter() - t0:.0f} s", flush=True)
    if todo:
        store.write_bytes(pickle.dumps(known))
    return [row for entry in index for row in known[entry["pgt"]]]


#: Features that need the MR image (``image_features`` and the evidence stage's image checks).
IMAGE_FEATURES = ("img_", "chk_image_contrast", "chk_edge_offset", "chk_class_overlap")


def _without_image(features: dict) -> dict:
    return {k: v for k, v in features.items() if not k.startswith(IMAGE_FEATURES)}


def labelled(rows: list[dict], *, image_dropout: bool = False, families_weight: float = 0.0) -> LabelledRows:
    """Training rows: structures present in the mask (a missing one is flagged erroneous anyway).

    Failure-family rows get the sample weight ``families_weight`` (left out at 0), every other row 1.
    With ``image_dropout`` every row also appears without its image features (``has_image`` False), so
    that one calibration serves volumes with and without a paired MR image.
    """
    kept = [r for r in rows if r["present"] and (families_weight > 0 or not r.get("family"))]
    features = [r["features"] for r in kept]
    has_image = [any(k.startswith("img_") for k in f) for f in features]
    if image_dropout:
        kept = kept + kept
        features = features + [_without_image(f) for f in features]
        has_image = has_image + [False] * len(has_image)
    return LabelledRows(
        rows=features,
        structures=[Structure(r["structure"]) for r in kept],
        dsc=np.array([r["dsc"] for r in kept], dtype=float),
        hd_mm=np.array([r["hd_mm"] for r in kept], dtype=float),
        groups=np.array([r["patient"] for r in kept]),
        segmenters=np.array([r["segmenter"] for r in kept]),
        weights=np.array([families_weight if r.get("family") else 1.0 for r in kept], dtype=float)
        if any(r.get("family") for r in kept)
        else None,
        extra={
            "family": np.array([bool(r.get("family")) for r in kept], dtype=bool),
            "phase": np.array([r["phase"] for r in kept]),
            "pdsc": np.array([r["score"].pdsc for r in kept], dtype=float),
            "item": np.array([r["score"] for r in kept], dtype=object),
            "phd_mm": np.array([r["score"].phd_mm for r in kept], dtype=float),
            "has_image": np.array(has_image, dtype=bool),
        },
    )


def loso_folds(data: LabelledRows):
    """Leave one segmenter out; the ground truths and failure families are always in training and
    never tested here."""
    family = data.extra["family"]
    for name in sorted(set(data.segmenters[~family].tolist()) - {GROUND_TRUTH}):
        test = np.flatnonzero(data.segmenters == name)
        train = np.flatnonzero(data.segmenters != name)
        yield train, test


def patient_folds(data: LabelledRows, n_splits: int = 5):
    """5 folds by patient; a fold's failure-family rows leave its training set but are not tested."""
    family = data.extra["family"]
    for train, test in group_folds(data.groups, n_splits):
        yield train, test[~family[test]]


def _p_flags(data: LabelledRows, pred: dict, policy: FlagPolicy) -> np.ndarray:
    """The estimate flags: the failure model's P(failure) where it ran, else the intervals."""
    from monitor.qc.calibration.apply import probability_below
    from monitor.qc.records import Estimate

    out = np.zeros(len(data), dtype=bool)
    failure = pred.get("failure")
    for i in range(len(data)):
        if failure is not None and np.isfinite(failure[i]):
            out[i] = failure[i] >= policy.fail_probability
            continue
        d = Estimate(value=pred[Target.DSC][0][i], lo=pred[Target.DSC][1][i], hi=pred[Target.DSC][2][i])
        h = Estimate(value=pred[Target.HD][0][i], lo=pred[Target.HD][1][i], hi=pred[Target.HD][2][i])
        if not math.isfinite(d.value) or not math.isfinite(h.value):
            continue
        low = probability_below(d, policy.suspicious_dice, Target.DSC) >= policy.fail_probability
        high = 1 - probability_below(h, policy.suspicious_hd_mm, Target.HD) >= policy.fail_probability
        out[i] = low or high
    return out


def _end_to_end_flags(data: LabelledRows, pred: dict, policy: FlagPolicy) -> np.ndarray:
    """What the pipeline flags with the default settings: the evidence stage's severities and, with the
    estimates known, the estimate flags in place of pDSC/pHD (``reflag``): flag not ``ok``."""
    from monitor.qc.calibration.apply import reflag
    from monitor.qc.records import Estimate

    out = np.zeros(len(data), dtype=bool)
    for i, item in enumerate(data.extra["item"]):
        d = Estimate(value=pred[Target.DSC][0][i], lo=pred[Target.DSC][1][i], hi=pred[Target.DSC][2][i])
        h = Estimate(value=pred[Target.HD][0][i], lo=pred[Target.HD][1][i], hi=pred[Target.HD][2][i])
        p = pred["failure"][i] if "failure" in pred and np.isfinite(pred["failure"][i]) else None
        if math.isfinite(d.value) and math.isfinite(h.value):
            item = reflag(replace(item, edsc=d, ehd_mm=h, p_failure=p), policy)
        out[i] = item.flag != FlagLevel.OK
    return out


def volume_key(segmenter: str, patient: str, phase: str) -> str:
    return f"{segmenter}|{patient}|{phase}"


def missing_structures(rows: list[dict]) -> dict[str, bool]:
    """Volume key -> whether a structure missing from its mask is in its ground truth (a real failure);
    such a structure is flagged ``erroneous`` and has no estimate, so it is not among the fitted rows."""
    out: dict[str, bool] = {}
    for r in rows:
        if not r["present"] and not r.get("family"):
            key = volume_key(r["segmenter"], r["patient"], r["phase"])
            out[key] = out.get(key, False) or bool(r["gt_present"])
    return out


def _volume_flags(
    data: LabelledRows,
    failed: np.ndarray,
    flagged: np.ndarray,
    pred_rows: np.ndarray,
    gt_rows: np.ndarray,
    missing: dict[str, bool],
) -> dict:
    """Volume level (a volume fails / is flagged when any of its structures is; a structure missing from
    the mask is flagged, and fails when the ground truth has it): precision and recall on the
    segmenters' volumes, flag rate on the ground truths."""
    keys = np.array(
        [volume_key(*k) for k in zip(data.segmenters, data.groups, data.extra["phase"], strict=True)]
    )
    tested = set(keys[pred_rows].tolist())

    def by_volume(rows: np.ndarray, values: np.ndarray, extra: dict[str, bool]) -> dict[str, bool]:
        found = dict(extra)
        for k, v in zip(keys[rows], values[rows], strict=True):
            found[k] = found.get(k, False) or bool(v)
        return found

    real = by_volume(pred_rows, failed, {k: v for k, v in missing.items() if k in tested})
    raised = by_volume(pred_rows, flagged, {k: True for k in missing if k in tested})
    order = sorted(real)
    out = flag_figures(np.array([real[k] for k in order]), np.array([raised[k] for k in order])).as_dict()
    gt = by_volume(gt_rows, flagged, {})
    out["gt_flag_rate"] = float(np.mean(list(gt.values()))) if gt else math.nan
    return out


def summarize(
    data: LabelledRows, pred: dict, policy: FlagPolicy = POLICY, missing: dict[str, bool] | None = None
) -> dict:
    """Figures of out-of-fold predictions (rows nan where untested are left out)."""
    out: dict = {"structures": {}}
    tested = np.isfinite(pred[Target.DSC][0])
    for s in STRUCTURES:
        sel = tested & (np.array([x == s for x in data.structures]))
        out["structures"][s.value] = {
            "edsc": estimate_figures(data.dsc[sel], *(v[sel] for v in pred[Target.DSC])).as_dict(),
            "ehd_mm": estimate_figures(data.hd_mm[sel], *(v[sel] for v in pred[Target.HD])).as_dict(),
            "pdsc": estimate_figures(data.dsc[sel], data.extra["pdsc"][sel]).as_dict(),
            "phd_mm": estimate_figures(data.hd_mm[sel], data.extra["phd_mm"][sel]).as_dict(),
        }
    failed = real_failures(data, policy.suspicious_dice, policy.suspicious_hd_mm)
    flagged = _p_flags(data, pred, policy)
    paper = (data.extra["pdsc"] < policy.suspicious_dice) | (
        np.nan_to_num(data.extra["phd_mm"]) > policy.suspicious_hd_mm
    )
    pred_rows = tested & (data.segmenters != GROUND_TRUTH)
    out["flags"] = flag_figures(failed[pred_rows], flagged[pred_rows]).as_dict()
    out["flags_paper"] = flag_figures(failed[pred_rows], paper[pred_rows]).as_dict()
    pipeline = _end_to_end_flags(data, pred, policy)
    out["flags_end_to_end"] = flag_figures(failed[pred_rows], pipeline[pred_rows]).as_dict()
    gt_rows = tested & (data.segmenters == GROUND_TRUTH)
    out["gt_flag_rate"] = float(flagged[gt_rows].mean()) if gt_rows.any() else math.nan
    out["gt_flag_rate_paper"] = float(paper[gt_rows].mean()) if gt_rows.any() else math.nan
    out["gt_flag_rate_end_to_end"] = float(pipeline[gt_rows].mean()) if gt_rows.any() else math.nan
    out["volumes_end_to_end"] = _volume_flags(data, failed, pipeline, pred_rows, gt_rows, missing or {})
    ranking = {}
    for s in STRUCTURES:
        for phase in ("ED", "ES"):
            sel = pred_rows & np.array([x == s for x in data.structures]) & (data.extra["phase"] == phase)
            ranking[f"{s.value}_{phase}"] = {
                "ehd_mm": ranking_rho(data.segmenters[sel], data.hd_mm[sel], pred[Target.HD][0][sel]),
                "phd_mm": ranking_rho(data.segmenters[sel], data.hd_mm[sel], data.extra["phd_mm"][sel]),
                "edsc": ranking_rho(data.segmenters[sel], data.dsc[sel], pred[Target.DSC][0][sel]),
            }
    out["ranking_rs"] = ranking
    return out


def print_summary(name: str, figures: dict) -> None:
    print(f"== {name}")
    for s, f in figures["structures"].items():
        print(
            f"  {s:3s} eDSC r {f['edsc']['r']:.3f} mae {f['edsc']['mae']:.3f} cov {f['edsc']['coverage']:.3f} "
            f"w {f['edsc']['width']:.3f} | pDSC r {f['pdsc']['r']:.3f} || eHD r {f['ehd_mm']['r']:.3f} "
            f"mae {f['ehd_mm']['mae']:.1f} cov {f['ehd_mm']['coverage']:.3f} w {f['ehd_mm']['width']:.1f} "
            f"| pHD r {f['phd_mm']['r']:.3f}"
        )
    fl = figures["flags"]
    print(
        f"  flags P {fl['precision']:.3f} R {fl['recall']:.3f} (n {fl['n']}, failures {fl['failures']}); "
        f"paper P {figures['flags_paper']['precision']:.3f} R {figures['flags_paper']['recall']:.3f}; "
        f"GT flag rate {figures['gt_flag_rate']:.4f}"
    )
    e2e = figures["flags_end_to_end"]
    print(
        f"  end-to-end (evidence + estimate flags) P {e2e['precision']:.3f} R {e2e['recall']:.3f}; "
        f"GT flag rate {figures['gt_flag_rate_end_to_end']:.4f}; volumes P "
        f"{figures['volumes_end_to_end']['precision']:.3f} R {figures['volumes_end_to_end']['recall']:.3f} "
        f"GT {figures['volumes_end_to_end']['gt_flag_rate']:.4f}"
    )
    rs = figures["ranking_rs"]
    print("  r_s eHD " + " ".join(f"{k} {v['ehd_mm']:.2f}" for k, v in rs.items()))


def _table(figures: dict) -> list[str]:
    lines = [
        "| structure | eDSC r | pDSC r | eDSC MAE | pDSC MAE | eDSC coverage (width) "
        "| eHD r | pHD r | eHD MAE (mm) | pHD MAE (mm) | eHD coverage (width, mm) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for s, f in figures["structures"].items():
        e, p, h, q = f["edsc"], f["pdsc"], f["ehd_mm"], f["phd_mm"]
        lines.append(
            f"| {s} | {e['r']:.3f} | {p['r']:.3f} | {e['mae']:.3f} | {p['mae']:.3f} | "
            f"{e['coverage']:.3f} ({e['width']:.2f}) | {h['r']:.3f} | {q['r']:.3f} | {h['mae']:.1f} | "
            f"{q['mae']:.1f} | {h['coverage']:.3f} ({h['width']:.1f}) |"
        )
    fl, pa = figures["flags"], figures["flags_paper"]
    lines += [
        "",
        f"Estimate flags (the failure model's P(failure) >= {POLICY.fail_probability:g}) against real failures "
        f"(Dice < 0.5 or HD > 50 mm, {fl['failures']} of {fl['n']} predicted "
        f"structures): precision {fl['precision']:.3f}, recall {fl['recall']:.3f} (the paper's pDSC/pHD "
        f"thresholds: {pa['precision']:.3f}, {pa['recall']:.3f}); ground-truth structures flagged: "
        f"{figures['gt_flag_rate']:.2%} (paper: {figures['gt_flag_rate_paper']:.2%}).",
        "",
        f"End to end with the default settings (the estimate flags plus the hard anatomical checks "
        f"`rv_position`, `far_component`, `stack_margin`; what `cmr-monitor evaluate` reports): structures "
        f"precision {figures['flags_end_to_end']['precision']:.3f}, "
        f"recall {figures['flags_end_to_end']['recall']:.3f}, ground-truth structures flagged "
        f"{figures['gt_flag_rate_end_to_end']:.2%}; volumes (a structure missing from the mask counts as "
        f"flagged) precision {figures['volumes_end_to_end']['precision']:.3f}, recall "
        f"{figures['volumes_end_to_end']['recall']:.3f}, ground-truth volumes flagged "
        f"{figures['volumes_end_to_end']['gt_flag_rate']:.2%}.",
        "",
        "Segmenter ranking, Spearman r_s of the six segmenters by mean eHD (pHD) against mean real HD: "
        + ", ".join(f"{k} {v['ehd_mm']:.2f} ({v['phd_mm']:.2f})" for k, v in figures["ranking_rs"].items())
        + ".",
    ]
    return lines


def _trees(model) -> str:
    """A fitted gradient-boosting model's size, as the card gives it."""
    return f"depth {model.max_depth}, {model.n_iter_} iterations, learning rate {model.learning_rate:g}"


def card(calibration, path: Path, digest: str, figures: dict, rows: int, note: str = "") -> str:
    """The model card of the shipped calibration."""
    lines = [
        "# Calibration card: `calibration_acdc.skops`",
        "",
        f"- **Version** `{calibration.version}`; SHA-256 `{digest}`; {path.stat().st_size:,} bytes (skops, no pickle).",
        f"- **What it estimates**: the real Dice (eDSC) and Hausdorff distance (eHD, mm) of LV, RV and MYO, "
        f"each with a {calibration.confidence:.0%} conformal interval, from pDSC/pHD (plain and 3D-refined), "
        "the evidence checks' values, simple mask features and, when the MR image is paired, image features.",
        f"- **Fitted on** {calibration.description}; {rows:,} training rows (structures present in the mask). "
        "Fitted by `bench/fit_calibration.py` from the pGT cache of `bench/calibration_cache.py`.",
        "- **Model**: per target a squared-error `HistGradientBoostingRegressor` point model of the real "
        f"value (Dice 0-1, HD in mm; {_trees(calibration.models[Target.DSC].point)}, at least "
        f"{calibration.models[Target.DSC].point.min_samples_leaf} samples per "
        "leaf; the structure an ordinal feature 0-2); intervals by MAPIE `ConformalizedQuantileRegressor` "
        "on quantile models (0.05, 0.5, 0.95) in the learning space (Dice as log(1.01 - y), HD as log1p(y)), "
        "fitted on 75 % of the patients and conformalized on the other 25 %.",
        "- **Failure model**: a `HistGradientBoostingClassifier` ("
        + (_trees(calibration.failure.classifier) if calibration.failure is not None else "none fitted")
        + ") on the same features gives P(real Dice < 0.5 or real HD > 50 mm); the estimate flags use it when "
        "the flag thresholds are those (`CMR_MONITOR_FAIL_PROBABILITY`, default 0.5), else the intervals.",
        "- **Features**: " + ", ".join(f"`{n}`" for n in calibration.feature_names) + ".",
        "",
        "## Cross-validated figures (dev set, out of fold)",
        "",
        "Rows are structures present in the mask, over the six segmenters (the ground truth scored as a "
        "seventh, pseudo, segmenter is in training and in the by-patient figures' flag rate only; failure-"
        "family volumes, when fitted on, are training rows only and never tested). "
        "Leave-one-segmenter-out never sees the tested network: those are the honest figures.",
    ]
    for key, title in (
        ("by_patient", "By patient (5 folds)"),
        ("by_patient_image", "By patient (5 folds), volumes with their MR image"),
        ("by_patient_no_image", "By patient (5 folds), volumes without an image"),
        ("loso", "Leave one segmenter out"),
        ("loso_image", "Leave one segmenter out, volumes with their MR image"),
        ("loso_no_image", "Leave one segmenter out, volumes without an image"),
    ):
        if key in figures:
            lines += ["", f"### {title}", "", *_table(figures[key])]
    if note:
        lines += ["", note.strip()]
    lines += [
        "",
        "## Limits",
        "",
        "- ACDC dev data only (80 patients, one centre, nominal spacing); `tiramisu` is in-sample for its "
        "network; the autoencoder was trained on 64 of these patients. Re-calibrate on a site's own "
        "labelled cases with `cmr-monitor calibrate` (a few dozen volumes suffice for the stacked correction).",
        "- Intervals are marginal (90 % over cases like these), not per case; coverage on another site's "
        "data holds only as far as its cases resemble these.",
    ]
    return "\n".join(lines) + "\n"


def _subsets(data: LabelledRows):
    """("", all rows) without image dropout; ("_image", rows with image features) and ("_no_image",
    rows without) with it."""
    has = data.extra["has_image"]
    if has.all() or not has.any():
        yield "", np.arange(len(data))
        return
    yield "_image", np.flatnonzero(has)
    yield "_no_image", np.flatnonzero(~has)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, required=True)
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).resolve().parent.parent / "monitor" / "checkpoints"
    )
    parser.add_argument("--no-image", action="store_true", help="leave the MR image features out")
    parser.add_argument("--version", default=f"acdc-dev-{datetime.now(UTC):%Y%m%d}")
    parser.add_argument("--params", default="", help="BoostingParams overrides, e.g. max_depth=2,max_iter=80")
    parser.add_argument("--cv-only", action="store_true", help="print the figures, write nothing")
    parser.add_argument(
        "--image-dropout", action="store_true", help="train on every row with and without its image features"
    )
    parser.add_argument(
        "--families-weight",
        type=float,
        default=0.0,
        help="sample weight of failure-family rows (0: left out)",
    )
    parser.add_argument(
        "--note", type=Path, default=None, help="Markdown appended to the card (e.g. the choice)"
    )
    parser.add_argument("--jobs", type=int, default=1, help="processes computing the features")
    parser.add_argument(
        "--figures", type=Path, default=None, help="JSON of the figures (default: in the cache)"
    )
    args = parser.parse_args()
    rows = load_rows(args.cache, with_image=not args.no_image, jobs=args.jobs)
    data = labelled(rows, image_dropout=args.image_dropout, families_weight=args.families_weight)
    missing = missing_structures(rows)
    n_families = int(data.extra["family"].sum())
    families = sorted({r["segmenter"] for r in rows if r.get("family")}) if n_families else []
    overrides = dict(kv.split("=") for kv in args.params.split(",") if kv)
    params = BoostingParams(**{k: type(getattr(BoostingParams(), k))(v) for k, v in overrides.items()})
    print(
        f"{len(data)} rows ({n_families} of {len(families)} failure-family sets, weight "
        f"{args.families_weight:g}), {len(set(data.groups.tolist()))} patients"
    )

    def fit(d: LabelledRows):
        return fit_calibration(d, version="cv", params=params)

    figures = {}
    with threadpool_limits(1):
        t0 = time.perf_counter()
        for name, folds in (("by_patient", patient_folds(data)), ("loso", loso_folds(data))):
            failure = np.full(len(data), np.nan)
            predicted = {**cross_predict(data, fit, folds, failure=failure), "failure": failure}
            (args.cache / f"oof_{name}.pkl").write_bytes(pickle.dumps((data, predicted)))
            for subset, keep in _subsets(data):
                key = name if subset == "" else f"{name}{subset}"
                figures[key] = summarize(
                    data.take(keep),
                    {
                        **{t: tuple(v[keep] for v in predicted[t]) for t in Target},
                        "failure": predicted["failure"][keep],
                    },
                    missing=missing,
                )
                print_summary(key, figures[key])
        print(f"cross-validation {time.perf_counter() - t0:.0f} s")
        figures_path = args.figures or args.cache / f"figures_w{args.families_weight:g}.json"
        figures_path.write_text(json.dumps(figures, indent=1))
        if args.cv_only:
            return
        final = fit_calibration(
            data,
            version=args.version,
            params=params,
            description=f"acdc-dev: 6 segmenters + ground truth, {len(set(data.groups.tolist()))} patients"
            + (
                f" + {len(families)} failure-family sets of bench/failure_set.py "
                f"({len({r['patient'] for r in rows if r.get('family')})} patients' ground truth, "
                f"weight {args.families_weight:g}), "
                if families and args.families_weight > 0
                else ", "
            )
            + (
                "every row with and without its image features"
                if args.image_dropout
                else f"{'with' if not args.no_image else 'without'} image features"
            ),
        )
    path = args.out / "calibration_acdc.skops"
    digest = dump_calibration(final, path)
    loaded = load_calibration(path)
    (args.out / "CALIBRATION_CARD.md").write_text(
        card(loaded, path, digest, figures, len(data), args.note.read_text() if args.note else "")
    )
    print(f"wrote {path} ({path.stat().st_size} bytes, sha256 {digest[:16]}), version {loaded.version}")


if __name__ == "__main__":
    main()
