"""``monitor.evaluation.realized``: the per-file real metrics of a cases table."""

from __future__ import annotations

import math

import pandas as pd

from monitor.evaluation import GROUND_TRUTH
from monitor.evaluation.realized import realized_from_cases
from monitor.qc.labels import Structure


def test_realized_from_cases_leaves_out_the_ground_truth_rows() -> None:
    cases = pd.DataFrame(
        {
            "segmenter": ["unet", "unet", "unet", GROUND_TRUTH],
            "pred_file": ["/p/a_ED.nii.gz", "/p/a_ED.nii.gz", "/p/b_ES.nii.gz", "/gt/a_ED.nii.gz"],
            "structure": ["LV", "RV", "LV", "LV"],
            "dice": [0.91, math.nan, 0.42, 1.0],
            "hd_mm": [4.5, math.nan, 21.0, 0.0],
        }
    )
    realized = realized_from_cases(cases)
    assert set(realized) == {"/p/a_ED.nii.gz", "/p/b_ES.nii.gz"}
    assert realized["/p/a_ED.nii.gz"][Structure.LV] == (0.91, 4.5)
    assert all(math.isnan(v) for v in realized["/p/a_ED.nii.gz"][Structure.RV])
    assert realized["/p/b_ES.nii.gz"] == {Structure.LV: (0.42, 21.0)}
