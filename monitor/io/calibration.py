"""Calibration files: skops archives (no pickle), versioned, byte-for-byte reproducible, with a checksum.

A calibration is written as a plain state (``dict`` of strings, numbers and fitted scikit-learn /
MAPIE estimators) with ``skops.io`` and repacked with fixed zip timestamps, so dumping a loaded
calibration gives back the very same bytes. A ``<file>.sha256`` sidecar holds the file's SHA-256;
loading checks it when present. Loading lists the archive's types first and refuses any type outside
an explicit allow-list (never ``trusted=True``).

Example:
    >>> dump_calibration(calibration, "calib/calibration.skops")
    >>> load_calibration("calib/calibration.skops").version
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import zipfile
from pathlib import Path

import skops.io as sio

from monitor.errors import CalibrationError
from monitor.qc.calibration.model import BoostedModel, Calibration, FailureModel, SiteCorrection
from monitor.qc.calibration.targets import Target

__all__ = [
    "FORMAT",
    "TRUSTED_TYPES",
    "bytes_sha256",
    "default_calibration_path",
    "dump_calibration",
    "dumps_calibration",
    "load_calibration",
]

#: Format name and version written into every calibration file.
FORMAT = ("cmr-monitor-calibration", 2)

#: Format versions read: 1 (no failure model, point models in the learning space) and 2 (``failure``,
#: and point models in real units where a model says ``real_units``).
READ_VERSIONS = frozenset({1, 2})

#: Largest calibration file read (bytes).
MAX_BYTES = 64 * 1024**2

#: Types (beyond skops' defaults) a calibration file may hold; anything else is refused.
TRUSTED_TYPES: frozenset[str] = frozenset(
    {
        "mapie.conformity_scores.bounds.absolute.AbsoluteConformityScore",
        "mapie.conformity_scores.bounds.residuals.ResidualNormalisedScore",
        "mapie.estimator.regressor.EnsembleRegressor",
        "mapie.regression.quantile_regression.ConformalizedQuantileRegressor",
        "mapie.regression.quantile_regression._MapieQuantileRegressor",
        "mapie.regression.regression.CrossConformalRegressor",
        "mapie.regression.regression._MapieRegressor",
        "numpy.float64",
        "numpy.int64",
        "numpy.ndarray",
        "numpy.random.mtrand.RandomState",
        "sklearn._loss.link.IdentityLink",
        "sklearn._loss.link.Interval",
        "sklearn._loss.loss.HalfSquaredError",
        "sklearn._loss.loss.PinballLoss",
        "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper",
        "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingRegressor",
        "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingClassifier",
        "sklearn._loss.loss.HalfBinomialLoss",
        "sklearn._loss.link.LogitLink",
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
        "sklearn.linear_model._huber.HuberRegressor",
        "sklearn.model_selection._split.GroupKFold",
        "sklearn.model_selection._split.KFold",
        "sklearn.model_selection._split.ShuffleSplit",
        "sklearn.model_selection._split.GroupShuffleSplit",
        "sklearn.model_selection._split.PredefinedSplit",
        "builtins.slice",
        "numpy.dtype",
        # MAPIE keeps ``functools.partial(check_array, ...)``; the partial's function must itself be
        # on this list, and check_array is the only function here
        "functools.partial",
        "sklearn.utils.validation.check_array",
    }
)


def default_calibration_path() -> Path:
    """The calibration shipped next to the checkpoint (``monitor/checkpoints/calibration_acdc.skops``)."""
    return Path(__file__).resolve().parent.parent / "checkpoints" / "calibration_acdc.skops"


def _state(calibration: Calibration) -> dict:
    return {
        "format": FORMAT[0],
        "format_version": FORMAT[1],
        "version": calibration.version,
        "description": calibration.description,
        "confidence": float(calibration.confidence),
        "feature_names": list(calibration.feature_names),
        "models": {
            t.value: {"point": m.point, "interval": m.interval, "real_units": m.real_units is not None}
            for t, m in calibration.models.items()
        },
        "corrections": {t.value: c.regressor for t, c in calibration.corrections.items()},
        "failure": None
        if calibration.failure is None
        else {
            "classifier": calibration.failure.classifier,
            "dice": float(calibration.failure.dice),
            "hd_mm": float(calibration.failure.hd_mm),
        },
    }


def _from_state(state: object, path: Path | None) -> Calibration:
    if not isinstance(state, dict) or state.get("format") != FORMAT[0]:
        raise CalibrationError("bad_format", "not a cmr-monitor calibration file", path)
    if state.get("format_version") not in READ_VERSIONS:
        raise CalibrationError(
            "bad_format",
            f"format version {sorted(READ_VERSIONS)} expected, got {state.get('format_version')!r}",
            path,
        )
    failure = state.get("failure")
    try:
        return Calibration(
            version=str(state["version"]),
            description=str(state.get("description", "")),
            confidence=float(state["confidence"]),
            feature_names=tuple(str(n) for n in state["feature_names"]),
            models={
                Target(k): BoostedModel(
                    point=v["point"],
                    interval=v["interval"],
                    real_units=Target(k) if v.get("real_units", False) else None,
                )
                for k, v in state["models"].items()
            },
            corrections={Target(k): SiteCorrection(regressor=v) for k, v in state["corrections"].items()},
            failure=None
            if failure is None
            else FailureModel(
                classifier=failure["classifier"], dice=float(failure["dice"]), hd_mm=float(failure["hd_mm"])
            ),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise CalibrationError("bad_format", f"calibration state incomplete or invalid: {exc}", path) from exc


def _renumber(node: object, ids: dict[object, int], arrays: dict[str, str]) -> None:
    """Renumber skops' memo ids and array names in place, walking keys in sorted order."""
    if isinstance(node, list):
        for item in node:
            _renumber(item, ids, arrays)
        return
    if not isinstance(node, dict):
        return
    if "__id__" in node:
        if node.get("__loader__") == "JsonNode":  # an immutable value: its identity does not matter
            node["__id__"] = ids.setdefault(("json", len(ids)), len(ids) + 1)
        else:
            node["__id__"] = ids.setdefault(node["__id__"], len(ids) + 1)
    name = node.get("file")
    if isinstance(name, str) and name.endswith(".npy"):
        node["file"] = arrays.setdefault(name, f"a{len(arrays):06d}.npy")
    for key in sorted(node):
        _renumber(node[key], ids, arrays)


def _repack(data: bytes) -> bytes:
    """The archive made reproducible: equal content gives equal bytes.

    skops names its arrays and memo ids after ``id()`` of the objects, which changes from run to run
    (and with Python's interning of small values); they are renumbered in walk order (objects keep
    their identity: equal ids stay equal; immutable JSON values each get their own), and entries get
    fixed names, timestamps and permissions.
    """
    with zipfile.ZipFile(io.BytesIO(data)) as src:
        schema = json.loads(src.read("schema.json"))
        arrays: dict[str, str] = {}
        _renumber(schema, {}, arrays)
        entries = [("schema.json", json.dumps(schema, indent=1, sort_keys=True).encode())]
        for info in src.infolist():
            if info.filename == "schema.json":
                continue
            if info.filename not in arrays:
                raise ValueError(f"unexpected entry in a skops archive: {info.filename}")
            entries.append((arrays[info.filename], src.read(info.filename)))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as dst:
        for name, content in sorted(entries):
            fixed = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            fixed.compress_type = zipfile.ZIP_DEFLATED
            fixed.external_attr = 0o644 << 16
            dst.writestr(fixed, content, compresslevel=9)
    return out.getvalue()


def dumps_calibration(calibration: Calibration) -> bytes:
    """The file content of ``calibration`` (deterministic: equal calibrations give equal bytes)."""
    return _repack(sio.dumps(_state(calibration)))


def bytes_sha256(data: bytes) -> str:
    """Hex SHA-256 of a calibration file's bytes."""
    return hashlib.sha256(data).hexdigest()


def dump_calibration(calibration: Calibration, path: Path | str) -> str:
    """Write ``calibration`` to ``path`` (atomically) and its ``.sha256`` sidecar.

    Returns: the file's SHA-256 (hex).
    """
    path = Path(path)
    data = dumps_calibration(calibration)
    digest = bytes_sha256(data)
    path.parent.mkdir(parents=True, exist_ok=True)
    for target, content in ((path, data), (_sidecar(path), f"{digest}  {path.name}\n".encode())):
        tmp = target.with_name(f".{target.name}.tmp")
        tmp.write_bytes(content)
        os.replace(tmp, target)
    return digest


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def load_calibration(path: Path | str | None = None) -> Calibration:
    """Read a calibration file (None: the shipped one).

    Raises: CalibrationError when the file is missing, unreadable, too large, holds a type outside
        ``TRUSTED_TYPES``, disagrees with its ``.sha256`` sidecar, or is not a calibration.
    """
    path = Path(path) if path is not None else default_calibration_path()
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise CalibrationError("too_large", f"{size} bytes, at most {MAX_BYTES} accepted", path)
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise CalibrationError("not_found", f"calibration file not found: {path}", path) from exc
    except OSError as exc:
        raise CalibrationError("unreadable", f"calibration file not readable: {exc}", path) from exc
    sidecar = _sidecar(path)
    if sidecar.is_file():
        expected = sidecar.read_text().split()[0] if sidecar.read_text().strip() else ""
        if expected != bytes_sha256(data):
            raise CalibrationError(
                "checksum_mismatch",
                f"SHA-256 {bytes_sha256(data)[:12]}... vs {expected[:12]}... in {sidecar.name}",
                path,
            )
    return loads_calibration(data, path)


def loads_calibration(data: bytes, path: Path | None = None) -> Calibration:
    """A calibration from file content (see ``load_calibration``)."""
    try:
        found = set(sio.get_untrusted_types(data=data))
    except Exception as exc:
        raise CalibrationError("unreadable", f"not a skops archive: {exc}", path) from exc
    untrusted = sorted(found - TRUSTED_TYPES)
    if untrusted:
        raise CalibrationError(
            "untrusted_types", f"types outside the allow-list: {', '.join(untrusted[:8])}", path
        )
    try:
        state = sio.loads(data, trusted=sorted(found))
    except Exception as exc:
        raise CalibrationError("unreadable", f"calibration archive not loadable: {exc}", path) from exc
    return _from_state(state, path)
