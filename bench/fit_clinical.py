"""Fit the shipped clinical calibration on the dev set and print its cross-validated figures.

    python bench/fit_clinical.py --data ../shared/data/acdc-dev --cache /tmp/clinical-cache \
        --out monitor/checkpoints/clinical_acdc.skops --report clinical_report.json

Steps: every dev volume (the ground truth and the predictions of each segmenter) is scored by the
shipped autoencoder (the pGT arrays are cached in ``--cache``), turned into ``VolumeIndices`` through
``monitor.qc.scores.score_volume`` and ``indices_from_score`` (the daemon's path), paired per patient;
the real error of each index is the prediction's value minus the ground truth's. Figures: 5-fold by
patient and leave-one-segmenter-out (LOSO): Pearson r of real vs estimated absolute error, MAE, 90 %
interval coverage, LVEF flag precision and recall against real |LVEF error| > 5 points; then the final
calibration is fitted on every row. Dev data only; never used by the tests.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np

from monitor.io.clinical import save_clinical_calibration
from monitor.io.layouts import read_info_cfg
from monitor.io.nifti import load_mask
from monitor.qc.clinical import (
    INDICES,
    ClinicalPolicy,
    VolumeIndices,
    clinical_values,
    fit_clinical_calibration,
    indices_from_score,
    patient_features,
)
from monitor.qc.clinical.estimator import BASELINE_INDICES
from monitor.qc.flags import FlagPolicy
from monitor.qc.scores import score_volume

GT = "gt"


def _jobs(data: Path) -> list[tuple[str, str, str, Path]]:
    jobs = []
    for folder in sorted((data / "gt").iterdir()):
        if not folder.is_dir():
            continue
        frames = read_info_cfg(folder)
        for phase in ("ED", "ES"):
            jobs.append(
                (GT, folder.name, phase, folder / f"{folder.name}_frame{frames[phase]:02d}_gt.nii.gz")
            )
    for seg in sorted((data / "predictions").iterdir()):
        for path in sorted(seg.glob("*_E[DS].nii.gz")):
            patient, phase = path.name.removesuffix(".nii.gz").rsplit("_", 1)
            jobs.append((seg.name, patient, phase, path))
    return jobs


def _pgt_cache(jobs: list[tuple[str, str, str, Path]], cache: Path, batch: int) -> None:
    """Score every volume once with the shipped checkpoint; mask, pGT and spacing go to ``cache/pgt``."""
    (cache / "pgt").mkdir(parents=True, exist_ok=True)
    todo = [j for j in jobs if not (cache / "pgt" / f"{j[0]}__{j[1]}_{j[2]}.npz").exists()]
    if not todo:
        return
    from monitor.model.scorer import Scorer

    scorer = Scorer(device="auto")
    start = time.perf_counter()
    for i in range(0, len(todo), batch):
        part = todo[i : i + batch]
        volumes = [load_mask(j[3]) for j in part]
        for job, volume, scored in zip(part, volumes, scorer.score_batch(volumes), strict=True):
            np.savez_compressed(
                cache / "pgt" / f"{job[0]}__{job[1]}_{job[2]}.npz",
                mask=volume.labels,
                pgt=scored.pgt,
                spacing=np.asarray(volume.spacing_mm),
            )
        print(f"scored {i + len(part)}/{len(todo)} in {time.perf_counter() - start:.0f} s", flush=True)


def _volume_indices(
    jobs: list[tuple[str, str, str, Path]], cache: Path
) -> dict[tuple[str, str, str], VolumeIndices]:
    policy = FlagPolicy()
    out = {}
    for seg, patient, phase, _ in jobs:
        with np.load(cache / "pgt" / f"{seg}__{patient}_{phase}.npz") as f:
            mask, pgt, spacing = f["mask"], f["pgt"], tuple(float(v) for v in f["spacing"])
        score = score_volume(mask, pgt, spacing, policy=policy, slices_scored=0)  # type: ignore[arg-type]
        out[(seg, patient, phase)] = indices_from_score(mask, pgt, score)
    return out


def _table(volumes: dict[tuple[str, str, str], VolumeIndices]) -> dict[str, np.ndarray]:
    """One row per (segmenter, patient): features, real absolute errors per index, segmenter, patient."""
    rows, errors, segs, patients, signed = [], {i: [] for i in INDICES}, [], [], {i: [] for i in INDICES}
    for seg, patient in sorted({(s, p) for s, p, _ in volumes}):
        ed, es = volumes[(seg, patient, "ED")], volumes[(seg, patient, "ES")]
        truth = clinical_values(volumes[(GT, patient, "ED")], volumes[(GT, patient, "ES")])
        mask = clinical_values(ed, es)
        rows.append(patient_features(ed, es))
        for index in INDICES:
            err = mask.get(index) - truth.get(index)
            errors[index].append(abs(err) if math.isfinite(err) else math.nan)
            signed[index].append(err)
        segs.append(seg)
        patients.append(patient)
    table = {"x": np.asarray(rows), "segmenter": np.asarray(segs), "patient": np.asarray(patients)}
    table.update({f"abs_{i}": np.asarray(v, dtype=float) for i, v in errors.items()})
    return table


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 3 or np.std(a[ok]) == 0 or np.std(b[ok]) == 0:
        return math.nan
    return float(np.corrcoef(a[ok], b[ok])[0, 1])


def _predict_cv(
    table: dict[str, np.ndarray], split: np.ndarray, version: str, baseline: tuple[str, ...]
) -> dict[str, np.ndarray]:
    """Out-of-fold (estimate, lo, hi) per index; ``split`` labels the fold of each row."""
    n = len(split)
    out = {i: np.full((3, n), np.nan) for i in INDICES}
    for fold in np.unique(split):
        test = split == fold
        cal = fit_clinical_calibration(
            table["x"][~test],
            {i: table[f"abs_{i}"][~test] for i in INDICES},
            table["patient"][~test],
            version=version,
            baseline_indices=baseline,
        )
        for index, (v, lo, hi) in cal.estimate_rows(table["x"][test]).items():
            out[index][:, test] = np.stack([v, lo, hi])
    return out


def _figures(table: dict[str, np.ndarray], pred: dict[str, np.ndarray], rows: np.ndarray) -> dict[str, float]:
    figures: dict[str, float] = {"n_rows": int(rows.sum())}
    for index in INDICES:
        real = table[f"abs_{index}"][rows]
        v, lo, hi = (p[rows] for p in pred[index])
        ok = np.isfinite(real)
        figures[f"{index}.pearson_abs_error"] = _pearson(real, v)
        figures[f"{index}.mae"] = float(np.mean(np.abs(real[ok] - v[ok])))
        figures[f"{index}.coverage"] = float(np.mean((real[ok] >= lo[ok]) & (real[ok] <= hi[ok])))
        figures[f"{index}.median_width"] = float(np.median(hi[ok] - lo[ok]))
        pseudo = np.abs(table["x"][rows][:, list_feature(f"{index}_pseudo_error")])
        figures[f"{index}.pearson_abs_pseudo"] = _pearson(real, pseudo)
    real = table["abs_lv_ef"][rows]
    for rule in ("lo", "estimate"):
        policy = ClinicalPolicy(rule=rule)
        judged = pred["lv_ef"][1][rows] if rule == "lo" else pred["lv_ef"][0][rows]
        flagged = judged > policy.lvef_error_limit_pct
        ok = np.isfinite(real)
        truth = real[ok] > 5.0
        tp = int(np.sum(flagged[ok] & truth))
        figures[f"lv_ef.flag_{rule}.precision"] = tp / max(1, int(flagged[ok].sum()))
        figures[f"lv_ef.flag_{rule}.recall"] = tp / max(1, int(truth.sum()))
        figures[f"lv_ef.flag_{rule}.n_flagged"] = int(flagged[ok].sum())
    figures["lv_ef.n_real_above_5"] = int(np.sum(real[np.isfinite(real)] > 5.0))
    return figures


def list_feature(name: str) -> int:
    from monitor.qc.clinical import FEATURES

    return FEATURES.index(name)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=Path("../shared/data/acdc-dev"))
    parser.add_argument("--cache", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=None, help="write the calibration here")
    parser.add_argument("--report", type=Path, default=None, help="write the figures (JSON) here")
    parser.add_argument("--version", default="clinical-acdc-dev-1")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument(
        "--baseline",
        default=",".join(BASELINE_INDICES),
        help="indices whose model corrects their pseudo error (comma-separated; empty: none)",
    )
    parser.add_argument("--skip-cv", action="store_true", help="only fit and write the calibration")
    parser.add_argument("--no-gt-rows", action="store_true", help="leave the ground truth out of the fit")
    args = parser.parse_args()

    baseline = tuple(i for i in args.baseline.split(",") if i)
    jobs = _jobs(args.data)
    _pgt_cache(jobs, args.cache, args.batch)
    start = time.perf_counter()
    table = _table(_volume_indices(jobs, args.cache))
    print(f"features of {len(table['patient'])} patient rows in {time.perf_counter() - start:.0f} s")
    if args.no_gt_rows:
        keep = table["segmenter"] != GT
        table = {k: v[keep] for k, v in table.items()}
    if args.skip_cv:
        _write(args, table, baseline)
        return
    segmenters = np.unique(table["segmenter"])
    patients = np.unique(table["patient"])
    fold_of = {p: k % 5 for k, p in enumerate(np.random.default_rng(0).permutation(patients))}
    report: dict[str, object] = {"version": args.version, "segmenters": segmenters.tolist()}
    by_patient = _predict_cv(
        table, np.asarray([fold_of[p] for p in table["patient"]]), args.version, baseline
    )
    loso = _predict_cv(table, table["segmenter"], args.version, baseline)
    not_gt = table["segmenter"] != GT
    for name, pred in (("by_patient", by_patient), ("loso", loso)):
        report[name] = {"all": _figures(table, pred, not_gt)}
        for seg in segmenters:
            if seg != GT:
                report[name][seg] = _figures(table, pred, table["segmenter"] == seg)  # type: ignore[index]
    if GT in segmenters:  # flag rate on the ground truth itself (its real error is 0)
        gt_rows = table["segmenter"] == GT
        report["gt_flag_rate_lo"] = float(np.mean(by_patient["lv_ef"][1][gt_rows] > 5.0))
    print(json.dumps(report, indent=1, default=float))
    if args.report:
        args.report.write_text(json.dumps(report, indent=1, default=float))
    _write(args, table, baseline)


def _write(args: argparse.Namespace, table: dict[str, np.ndarray], baseline: tuple[str, ...]) -> None:
    if not args.out:
        return
    calibration = fit_clinical_calibration(
        table["x"],
        {i: table[f"abs_{i}"] for i in INDICES},
        table["patient"],
        version=args.version,
        baseline_indices=baseline,
    )
    digest = save_clinical_calibration(calibration, args.out)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB, sha256 {digest[:12]})")


if __name__ == "__main__":
    main()
