"""What ``app.py`` hands to the pages on each run: database URL, settings, sidebar filters, counts."""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from dashboard.config import DashboardSettings
from dashboard.filters import Filters
from monitor.store import StatusCounts

__all__ = ["PageContext", "current", "publish"]

_KEY = "cmr_monitor_page_context"


@dataclass(frozen=True, slots=True, kw_only=True)
class PageContext:
    """The state every page reads."""

    url: str  #: database URL (may hold a password: never shown, see ``monitor.store.safe_url``)
    settings: DashboardSettings  #: dashboard settings of this process
    filters: Filters  #: the sidebar selection
    counts: StatusCounts  #: files per status and flag level (cached)


def publish(context: PageContext) -> None:
    """Make ``context`` available to the page that runs next (called by ``app.py``)."""
    st.session_state[_KEY] = context


def current() -> PageContext:
    """The context ``app.py`` published in this run; stops the page when it was opened on its own."""
    context = st.session_state.get(_KEY)
    if not isinstance(context, PageContext):
        st.error(
            "Open the dashboard through its entry point: `cmr-monitor dashboard` (streamlit run dashboard/app.py)."
        )
        st.stop()
    return context
