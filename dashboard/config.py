"""Dashboard settings: ``monitor.config.Settings`` plus the options only the dashboard needs.

Every field can be set as ``CMR_MONITOR_<FIELD>`` in the environment (or in the TOML file), like the
other settings; ``cmr-monitor dashboard`` passes its options to the Streamlit process that way.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import NoDecode

from monitor.config import Settings

__all__ = ["DashboardSettings", "load_dashboard_settings"]


class DashboardSettings(Settings):
    """``Settings`` plus the dashboard's login, data folders and refresh options."""

    dashboard_password: SecretStr | None = Field(
        None,
        description="password of the dashboard login (env CMR_MONITOR_DASHBOARD_PASSWORD); none = no login, "
        "unless Streamlit secrets set dashboard_password",
    )
    dashboard_data_dirs: Annotated[list[Path], NoDecode] = Field(
        default_factory=list,
        description="folders besides artifacts_dir from which masks and MR images may be shown "
        f"(the watch folder, the image archive), separated by {os.pathsep!r}",
    )
    dashboard_warm_cache_s: float = Field(
        30.0, ge=0, description="seconds between background runs of the default views' queries; 0 = off"
    )
    dashboard_refresh_s: float = Field(
        0.0, ge=0, description="auto-refresh interval in seconds when the page opens; 0 = off"
    )

    @field_validator("dashboard_data_dirs", mode="before")
    @classmethod
    def _split_dirs(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [Path(part) for part in value.split(os.pathsep) if part.strip()]
        return value

    @property
    def allowed_roots(self) -> tuple[Path, ...]:
        """Folders the dashboard may read files from: ``artifacts_dir`` and ``dashboard_data_dirs``."""
        return (self.artifacts_dir, *self.dashboard_data_dirs)


def load_dashboard_settings(**overrides: Any) -> DashboardSettings:
    """Settings from the environment and configuration file, with ``overrides`` (None values ignored)."""
    settings = DashboardSettings()
    return settings.with_overrides(**overrides)  # type: ignore[return-value]
