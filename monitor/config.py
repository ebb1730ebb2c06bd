"""All settings in one place: environment ``CMR_MONITOR_*``, an optional TOML file, CLI overrides.

Precedence (highest first): explicit keyword arguments (the CLI passes its options here), environment
variables, the TOML file named by ``CMR_MONITOR_CONFIG`` (or ``cmr-monitor.toml`` in the working folder),
then the defaults below. This module is the only one that reads ``os.environ``.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

if TYPE_CHECKING:
    from monitor.qc.evidence import EvidenceSettings
    from monitor.qc.flags import FlagPolicy

__all__ = ["Settings", "config_file_path", "get_settings"]

_CONFIG_ENV = "CMR_MONITOR_CONFIG"
_DEFAULT_CONFIG_FILE = "cmr-monitor.toml"


def config_file_path() -> Path | None:
    """The TOML configuration file in force, or None when there is none."""
    explicit = os.environ.get(_CONFIG_ENV)
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise FileNotFoundError(f"{_CONFIG_ENV}={explicit} does not name a readable TOML file")
        return path
    default = Path(_DEFAULT_CONFIG_FILE)
    return default if default.is_file() else None


class Settings(BaseSettings):
    """cmr-monitor settings. Every field can be set as ``CMR_MONITOR_<FIELD>`` in the environment."""

    model_config = SettingsConfigDict(env_prefix="CMR_MONITOR_", extra="ignore", frozen=True)

    # --- data conventions
    label_map: str = Field(
        "acdc", description="'acdc' (1 RV, 2 MYO, 3 LV), 'mnms' (1 LV, 2 MYO, 3 RV) or 'LV=a,MYO=b,RV=c'"
    )

    # --- model and scoring
    checkpoint: Path | None = Field(
        None, description="autoencoder checkpoint; None = the one shipped in the package"
    )
    device: Literal["auto", "cpu", "cuda"] = "auto"
    batch_slices: int | None = Field(
        None, ge=1, description="most slices per model forward pass; None = 16 on CPU, 64 on CUDA"
    )
    torch_threads: int | None = Field(None, ge=1, description="CPU threads for torch; None = torch's default")
    cpu_workers: int | None = Field(
        None, ge=1, description="threads for per-volume CPU stages; None = 1 on CPU, min(8, cores) on CUDA"
    )
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        "fp32", description="model arithmetic; auto = fp16 on CUDA, fp32 on CPU (see docs/evaluation.md)"
    )
    image_evidence: bool = Field(
        True,
        description="pair each mask with its MR image (sidecar, ACDC, nnU-Net imagesTs) and use it as "
        "evidence when its geometry matches; false scores masks alone (docs/daemon.md)",
    )

    # --- flag thresholds
    suspicious_hd_mm: float = Field(
        50.0,
        gt=0,
        description="estimated real HD (basis estimates) or pHD (basis paper) above this (mm) is suspicious",
    )
    suspicious_dice: float = Field(
        0.5,
        ge=0,
        le=1,
        description="estimated real Dice (basis estimates) or pDSC (basis paper) below this is suspicious",
    )
    flag_basis: Literal["estimates", "paper"] = Field(
        "estimates",
        description="'estimates': suspicious from the calibrated eDSC/eHD intervals (when a calibration is "
        "loaded); 'paper': from pDSC/pHD as in the paper",
    )
    fail_probability: float = Field(
        0.5,
        gt=0,
        lt=1,
        description="flag when the calibration's failure model (or, without one for the thresholds, the "
        "estimate's interval) puts P(real Dice/HD beyond a threshold) at least this (0.5: see "
        "docs/evaluation.md)",
    )
    evidence_flags: Literal["hard", "all"] = Field(
        "hard",
        description="'hard': only the hard anatomical checks (rv_position, far_component, stack_margin) "
        "raise the flag, every other failed check is recorded in the evidence; 'all': every check raises "
        "its default severity (review mode: every anatomical defect flagged)",
    )
    reason_severities: dict[str, Literal["ok", "suspicious", "erroneous"]] = Field(
        default_factory=dict,
        description="reason code -> the level it raises, where it differs from the code's default, e.g. "
        '{"stack_margin": "erroneous", "holes": "ok"} (JSON in the environment); "ok" records a failed '
        "evidence check without raising the flag",
    )

    # --- evidence stage (monitor.qc.evidence): refined pGT, stack, topology and image checks
    evidence: bool = Field(True, description="run the evidence stage (false: the paper's pDSC/pHD alone)")
    evidence_stack_margin: bool = Field(
        True,
        description="extend the refined pGT into stack ends left empty beyond evidence_spare_mm "
        "(ACDC-like protocols cover the heart with at most one spare 10 mm slice)",
    )
    evidence_spare_mm: float = Field(
        10.0, ge=0, description="empty stack (mm) an end may hold beyond the heart; at least one slice"
    )
    evidence_tolerances: dict[str, float] = Field(
        default_factory=dict,
        description='other EvidenceSettings fields by name, e.g. {"centroid_jump_mm": 25} (JSON)',
    )

    # --- calibration (eDSC, eHD with 90 % intervals)
    calibration: str = Field(
        "shipped",
        description="calibration file: 'shipped' (the one next to the checkpoint), 'none', or a path "
        "written by 'cmr-monitor calibrate'",
    )

    # --- clinical indices (per patient: ED + ES)
    clinical: bool = Field(
        True, description="compute per-patient volumes, EF and LV mass and their estimated errors"
    )
    clinical_calibration: Path | None = Field(
        None, description="clinical error calibration (skops); None = the one shipped in the package"
    )
    lvef_error_limit_pct: float = Field(
        5.0,
        ge=0,
        description="a patient is suspicious when its estimated |LVEF error| interval lies above this",
    )

    # --- input limits (checked from the header before any voxel is read)
    max_file_bytes: int = Field(512 * 1024**2, gt=0, description="largest mask file accepted (bytes on disk)")
    max_voxels: int = Field(64 * 1024**2, gt=0, description="largest mask accepted (voxels)")
    max_dim: int = Field(2048, gt=0, description="largest extent of any axis (voxels)")
    min_inplane_voxels: int = Field(8, gt=0, description="smallest in-plane extent accepted (voxels)")

    # --- storage
    database_url: str = Field(
        "sqlite:///cmr-monitor.db", description="SQLAlchemy URL of the results database"
    )
    db_lock_timeout_s: float = Field(
        5.0,
        ge=0,
        description="PostgreSQL lock_timeout of every session (s): a statement that waits longer for a lock "
        "fails and is retried, instead of stalling behind a frozen peer; 0 = wait forever",
    )
    db_statement_timeout_s: float = Field(
        60.0, ge=0, description="PostgreSQL statement_timeout of every session (s); 0 = no limit"
    )
    db_idle_in_transaction_timeout_s: float = Field(
        60.0,
        ge=0,
        description="PostgreSQL idle_in_transaction_session_timeout of every session (s): the server ends "
        "a session left idle inside a transaction (a frozen process) and releases its locks; 0 = never",
    )
    artifacts_dir: Path = Field(
        Path("cmr-monitor-artifacts"), description="where pGT and inconsistency maps go"
    )

    # --- watch daemon
    daemon_stall_s: float = Field(
        10.0,
        gt=0,
        description="a step of a daemon loop (intake, maintenance, worker's database calls) that makes no "
        "progress this long (s) turns /readyz 503 and shows in cmr_monitor_loop_stalled_seconds",
    )

    @field_validator("evidence_tolerances")
    @classmethod
    def _check_tolerances(cls, value: dict[str, float]) -> dict[str, float]:
        from monitor.qc.evidence import EvidenceSettings

        known = set(EvidenceSettings.__dataclass_fields__)
        unknown = sorted(set(value) - known)
        if unknown:
            raise ValueError(f"unknown evidence tolerances {unknown}; known: {sorted(known)}")
        EvidenceSettings(**value)  # bad values raise here, with the name
        return value

    @field_validator("reason_severities")
    @classmethod
    def _check_severities(cls, value: dict[str, str]) -> dict[str, str]:
        from monitor.qc.reasons import ReasonCode

        unknown = sorted(set(value) - {code.value for code in ReasonCode})
        if unknown:
            raise ValueError(f"unknown reason codes {unknown}; known: {sorted(c.value for c in ReasonCode)}")
        return value

    def evidence_settings(self) -> EvidenceSettings | None:
        """The evidence stage's ``EvidenceSettings``, or None when ``evidence`` is off."""
        if not self.evidence:
            return None
        from monitor.qc.evidence import EvidenceSettings

        return EvidenceSettings(
            **{
                **self.evidence_tolerances,
                "stack_margin": self.evidence_stack_margin,
                "spare_mm": self.evidence_spare_mm,
            }
        )

    def flag_policy(self) -> FlagPolicy:
        """The ``FlagPolicy`` of these settings: thresholds and per-code severities."""
        from monitor.qc.flags import FlagPolicy
        from monitor.qc.levels import FlagLevel
        from monitor.qc.reasons import ReasonCode

        return FlagPolicy(
            suspicious_hd_mm=self.suspicious_hd_mm,
            suspicious_dice=self.suspicious_dice,
            basis=self.flag_basis,
            fail_probability=self.fail_probability,
            evidence_flags=self.evidence_flags,
            severities={ReasonCode(k): FlagLevel(v) for k, v in self.reason_severities.items()},
        )

    @field_validator("label_map")
    @classmethod
    def _check_label_map(cls, value: str) -> str:
        from monitor.qc.labels import get_label_map

        get_label_map(value)
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        path = config_file_path()
        if path is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        return tuple(sources)

    def with_overrides(self, **overrides: Any) -> Settings:
        """A copy with the given fields replaced; ``None`` values are ignored (unset CLI options)."""
        clean = {k: v for k, v in overrides.items() if v is not None}
        return self.model_validate({**self.model_dump(), **clean}) if clean else self


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Settings from environment and configuration file, loaded once per process."""
    return Settings()
