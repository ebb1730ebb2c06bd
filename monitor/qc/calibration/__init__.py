"""Calibration: pseudo metrics and evidence -> estimates of the real Dice and HD (mm) with intervals.

``features`` (feature rows), ``targets`` (learning spaces), ``model`` (``Calibration``), ``fit``
(fitting and cross-validation), ``figures`` (r, MAE, coverage, flag quality), ``apply`` (the pipeline
stage: estimates and estimate flags on volume scores). scikit-learn and MAPIE are allowed here; no
torch, database or files (``monitor.io.calibration`` reads and writes the file).
"""

from monitor.qc.calibration.apply import calibrate_scores, probability_below, reflag
from monitor.qc.calibration.features import feature_rows, image_features, mask_features
from monitor.qc.calibration.model import Calibration
from monitor.qc.calibration.targets import Target

__all__ = [
    "Calibration",
    "Target",
    "calibrate_scores",
    "feature_rows",
    "image_features",
    "mask_features",
    "probability_below",
    "reflag",
]
