"""The clinical calibration's file: skops (no pickle), versioned, with an explicit list of trusted types.

The file holds a plain dict: ``format``, ``version``, ``features``, ``confidence`` and, per index, the
conformalized interval model and the pseudo-error column it corrects. Loading refuses any type outside ``TRUSTED_TYPES``
(skops' own primitives aside), a file of another format, and a calibration fitted on other features.
"""

from __future__ import annotations

import hashlib
import threading
import zipfile
from pathlib import Path

from monitor.config import Settings
from monitor.errors import CheckpointError
from monitor.qc.clinical.conformal import IntervalModel
from monitor.qc.clinical.estimator import FEATURES, ClinicalCalibration

__all__ = [
    "FORMAT",
    "TRUSTED_TYPES",
    "LazyCalibration",
    "calibration_from_settings",
    "default_clinical_calibration_path",
    "load_clinical_calibration",
    "save_clinical_calibration",
]

#: The file format's name and version.
FORMAT = "cmr-monitor-clinical-calibration/1"
#: Types the file may hold beyond skops' defaults (numpy, builtins, the sklearn estimators it knows).
TRUSTED_TYPES: tuple[str, ...] = (
    "mapie.regression.quantile_regression.ConformalizedQuantileRegressor",
    "mapie.regression.quantile_regression._MapieQuantileRegressor",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
)


def default_clinical_calibration_path() -> Path:
    """The calibration shipped beside the checkpoint (``monitor/checkpoints/clinical_acdc.skops``)."""
    return Path(__file__).resolve().parent.parent / "checkpoints" / "clinical_acdc.skops"


def save_clinical_calibration(calibration: ClinicalCalibration, path: Path | str) -> str:
    """Write ``calibration`` to ``path`` (compressed skops); returns the file's sha256."""
    import skops.io as sio

    payload = {
        "format": FORMAT,
        "version": calibration.version,
        "features": list(calibration.features),
        "confidence": float(calibration.confidence),
        "models": {
            index: {"interval": model.interval, "baseline_column": model.baseline_column}
            for index, model in calibration.models.items()
        },
    }
    data = sio.dumps(payload, compression=zipfile.ZIP_DEFLATED, compresslevel=9)
    target = Path(path)
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_bytes(data)
    tmp.replace(target)
    return hashlib.sha256(data).hexdigest()


def load_clinical_calibration(path: Path | str | None = None) -> ClinicalCalibration:
    """Read a clinical calibration (None = the shipped one).

    Raises: CheckpointError when the file is missing or unreadable, holds an untrusted type, is of
        another format, or was fitted on other features.
    """
    import skops.io as sio

    source = Path(path) if path is not None else default_clinical_calibration_path()
    try:
        data = source.read_bytes()
    except OSError as exc:
        raise CheckpointError(f"clinical calibration {source} cannot be read: {exc.strerror or exc}") from exc
    try:
        payload = sio.loads(data, trusted=list(TRUSTED_TYPES))
    except sio.exceptions.UntrustedTypesFoundException as exc:
        raise CheckpointError(f"clinical calibration {source.name} holds untrusted types: {exc}") from exc
    except Exception as exc:  # a broken zip or skops schema: say which file
        raise CheckpointError(f"clinical calibration {source.name} is not a skops file: {exc}") from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        got = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise CheckpointError(f"clinical calibration {source.name} has format {got!r}, expected {FORMAT!r}")
    absent = sorted({"version", "features", "confidence", "models"} - set(payload))
    if absent:
        raise CheckpointError(f"clinical calibration {source.name} lacks {', '.join(absent)}")
    from mapie.regression import ConformalizedQuantileRegressor

    models = payload["models"]
    if not isinstance(models, dict) or not all(
        isinstance(parts, dict) and isinstance(parts.get("interval"), ConformalizedQuantileRegressor)
        for parts in models.values()
    ):
        raise CheckpointError(f"clinical calibration {source.name} holds no conformalized interval models")
    features = tuple(payload["features"])
    if features != FEATURES:
        raise CheckpointError(
            f"clinical calibration {source.name} ({payload['version']}) was fitted on other features; refit it"
        )
    confidence = float(payload["confidence"])
    models = {
        index: IntervalModel(
            interval=parts["interval"],
            confidence=confidence,
            baseline_column=parts.get("baseline_column"),
        )
        for index, parts in payload["models"].items()
    }
    return ClinicalCalibration(
        version=str(payload["version"]), features=features, models=models, confidence=confidence
    )


class LazyCalibration:
    """A clinical calibration loaded on first use (thread-safe): loading costs seconds of CPU (scikit-
    learn, MAPIE and some 1,000 trees), which a daemon pays only once a patient is complete.

    ``get()`` returns the calibration, or None when the clinical stage has no calibration; a file that
    cannot be used raises ``CheckpointError`` on every call (the caller logs it and goes on without
    estimates).
    """

    def __init__(self, path: Path | None, *, enabled: bool = True) -> None:
        self.path = path
        self.enabled = enabled
        self._lock = threading.Lock()
        self._loaded: ClinicalCalibration | None = None

    def check(self) -> None:
        """Fail early (``CheckpointError``) when the file does not exist."""
        source = self.path if self.path is not None else default_clinical_calibration_path()
        if self.enabled and not source.is_file():
            raise CheckpointError(f"clinical calibration {source} does not exist")

    def get(self) -> ClinicalCalibration | None:
        if not self.enabled:
            return None
        with self._lock:
            if self._loaded is None:
                self._loaded = load_clinical_calibration(self.path)
            return self._loaded


def calibration_from_settings(settings: Settings) -> ClinicalCalibration | None:
    """The clinical calibration the settings name (the shipped one by default); None when the clinical
    stage is off (``CMR_MONITOR_CLINICAL=false``).

    Raises: CheckpointError when the file cannot be used.
    """
    if not settings.clinical:
        return None
    return load_clinical_calibration(settings.clinical_calibration)
