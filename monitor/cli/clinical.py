"""The per-patient table of ``cmr-monitor score``: scored volumes named by case key and phase (from
names, sidecars or ACDC ``Info.cfg``, as the daemon names them), paired, assessed and written out."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from rich.console import Console

    from monitor.config import Settings
    from monitor.model.scorer import ScoredVolume
    from monitor.qc.clinical import ClinicalCalibration, ClinicalPolicy, VolumeIndices

__all__ = ["PatientCollector"]


@dataclass
class PatientCollector:
    """Collects scored volumes; ``rows`` pairs and assesses them (never by the order they came in)."""

    calibration: ClinicalCalibration | None
    policy: ClinicalPolicy
    enabled: bool = True
    _items: list[tuple[str, str, str | None, VolumeIndices]] = field(default_factory=list)

    @classmethod
    def from_settings(cls, settings: Settings) -> PatientCollector:
        from monitor.io.clinical import calibration_from_settings
        from monitor.qc.clinical import ClinicalPolicy

        return cls(
            calibration=calibration_from_settings(settings),
            policy=ClinicalPolicy(lvef_error_limit_pct=settings.lvef_error_limit_pct),
            enabled=settings.clinical,
        )

    def add(self, path: Path, root: Path, labels: np.ndarray, result: ScoredVolume) -> None:
        """Name one scored volume (segmenter, case key, phase) and keep its clinical volumes."""
        if not self.enabled:
            return
        from monitor.io.identity import IngestConfig, identify
        from monitor.qc.clinical import indices_from_score

        identity = identify(path, root, IngestConfig())
        segmenter = f"{identity.segmenter_name}/{identity.segmenter_version}"
        self._items.append(
            (
                segmenter,
                identity.case_key,
                identity.phase,
                indices_from_score(labels, result.pgt, result.score),
            )
        )

    def rows(self) -> list[dict[str, Any]]:
        """One row per segmenter and case with an ED or ES volume (``patient_row`` columns)."""
        from monitor.qc.clinical import assess_patient, pair_phases, patient_row

        out = []
        for segmenter in sorted({item[0] for item in self._items}):
            mine = [(case, phase, vi) for seg, case, phase, vi in self._items if seg == segmenter]
            for pair in pair_phases(mine):
                assessment = assess_patient(pair, calibration=self.calibration, policy=self.policy)
                out.append({"segmenter": segmenter, **patient_row(assessment)})
        return out

    def emit(
        self,
        rows: list[dict[str, Any]],
        *,
        csv_path: Path | None,
        out: Path | None,
        table: bool,
        console: Console,
    ) -> None:
        """Write the rows to ``csv_path`` and ``out/patients.csv``; print a short table when asked."""
        import pandas as pd

        frame = pd.DataFrame(rows)
        for target in (csv_path, out / "patients.csv" if out is not None else None):
            if target is not None:
                target.parent.mkdir(parents=True, exist_ok=True)
                frame.to_csv(target, index=False)
        if not table or not rows:
            return
        from rich.table import Table

        shown = Table(title=f"{len(rows)} patients (ED + ES)")
        for name in (
            "case",
            "LV EDV ml",
            "LV ESV ml",
            "LVEF %",
            "est. |LVEF err|",
            "RVEF %",
            "LV mass g",
            "flag",
        ):
            shown.add_column(name)

        def fmt(value: Any, digits: int = 1) -> str:
            return (
                "-"
                if value is None or (isinstance(value, float) and math.isnan(value))
                else f"{value:.{digits}f}"
            )

        for r in rows:
            if not r["complete"]:
                shown.add_row(str(r["case_key"]), "", "", "", "", "", "", f"waiting for {r['missing']}")
                continue
            err = r["est_error_lv_ef_pct"]
            interval = (
                "-"
                if math.isnan(err)
                else f"{err:.1f} [{r['est_error_lv_ef_pct_lo']:.1f}, {r['est_error_lv_ef_pct_hi']:.1f}]"
            )
            shown.add_row(
                str(r["case_key"]),
                fmt(r["lv_edv_ml"]),
                fmt(r["lv_esv_ml"]),
                fmt(r["lv_ef_pct"]),
                interval,
                fmt(r["rv_ef_pct"]),
                fmt(r["lv_mass_g"]),
                f"{r['flag']} {r['reasons']}".strip(),
            )
        console.print(shown)
