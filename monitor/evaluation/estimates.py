"""The calibrated estimates in the evaluation: r, MAE and interval coverage of eDSC/eHD against the real
Dice/HD, beside the same figures of pDSC/pHD, per structure (``summary.json`` key ``estimates``)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from monitor.evaluation.pairing import GROUND_TRUTH
from monitor.qc.calibration.figures import estimate_figures

__all__ = ["estimate_summary"]


def estimate_summary(cases: pd.DataFrame) -> dict[str, Any]:
    """Per structure (and ``all``): figures of ``edsc``/``ehd_mm`` (with coverage of their intervals)
    and of ``pdsc``/``phd_mm`` against the real ``dice``/``hd_mm``; predictions only (the ground truth
    scored as a segmenter is left out). Structures missing from the mask have no estimate and are left
    out of every figure. ``calibrated`` says whether any row had an estimate."""
    rows = cases[(cases["segmenter"] != GROUND_TRUTH) & ~cases["missing"] & (cases["mask_voxels"] > 0)]
    out: dict[str, Any] = {"calibrated": bool(np.isfinite(rows["edsc"].to_numpy(dtype=float)).any())}
    groups = [("all", rows), *((s, part) for s, part in rows.groupby("structure", sort=False))]
    for name, part in groups:

        def column(key: str, frame: pd.DataFrame = part) -> np.ndarray:
            return frame[key].to_numpy(dtype=float)

        out[name] = {
            "edsc": estimate_figures(
                column("dice"), column("edsc"), column("edsc_lo"), column("edsc_hi")
            ).as_dict(),
            "ehd_mm": estimate_figures(
                column("hd_mm"), column("ehd_mm"), column("ehd_mm_lo"), column("ehd_mm_hi")
            ).as_dict(),
            "pdsc": estimate_figures(column("dice"), column("pdsc")).as_dict(),
            "phd_mm": estimate_figures(column("hd_mm"), column("phd_mm")).as_dict(),
        }
    return out
