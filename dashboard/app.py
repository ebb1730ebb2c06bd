"""cmr-monitor dashboard: entry point of the Streamlit multipage app.

Run it with ``cmr-monitor dashboard [--db URL] [--port P]`` (or ``streamlit run dashboard/app.py`` with
``CMR_MONITOR_DATABASE_URL`` set). On every run it asks for the password when a login is configured,
refuses a database whose schema is not at head, draws the shared sidebar (filters, refresh) and runs
the selected page.
"""

from __future__ import annotations

import sys
from pathlib import Path

# ``streamlit run`` puts only this folder on sys.path; the ``dashboard`` package lives one level up.
_ROOT = str(Path(__file__).resolve().parent.parent)
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

import streamlit as st  # noqa: E402

from dashboard import auth, data  # noqa: E402
from dashboard.config import load_dashboard_settings  # noqa: E402
from dashboard.context import PageContext, publish  # noqa: E402
from dashboard.filters import sidebar_filters  # noqa: E402
from monitor.store import DatabaseUnavailable, safe_url  # noqa: E402

_REFRESH_CHOICES_S = (15, 30, 60, 300)
_ARMED = "cmr_monitor_refresh_armed"


def _auto_refresh(interval_s: float) -> None:
    """Rerun the whole app every ``interval_s`` seconds (a timed fragment that triggers an app rerun)."""

    @st.fragment(run_every=interval_s)
    def _tick() -> None:
        if st.session_state.get(_ARMED):
            st.rerun(scope="app")
        st.session_state[_ARMED] = True

    st.session_state[_ARMED] = False
    _tick()


def _pages() -> list[st.Page]:
    """The pages, built per run (a page object belongs to the run that made it)."""
    return [
        # Streamlit serves the default page at the root only; the hidden twin gives the overview its own
        # URL too (/overview), like every other page. A page's key is its url_path, so they differ.
        st.Page("views/overview.py", title="Overview", url_path="start", default=True),
        st.Page("views/overview.py", title="Overview", url_path="overview", visibility="hidden"),
        st.Page("views/alerts.py", title="Alerts", url_path="alerts"),
        st.Page("views/case.py", title="Case", url_path="case"),
        st.Page("views/versions.py", title="Segmenter versions", url_path="versions"),
        st.Page("views/realized.py", title="Estimated vs realized", url_path="realized"),
    ]


def main() -> None:
    """One run of the app."""
    st.set_page_config(page_title="cmr-monitor", layout="wide")  # no page_icon: it would be fetched online
    settings = load_dashboard_settings()
    fallback = settings.dashboard_password.get_secret_value() if settings.dashboard_password else None
    password = auth.configured_password(st.secrets, fallback)
    # The page is resolved before the login form, so that a link to a page (an alert's case) still
    # leads there once the user has logged in; the menu stays hidden until then.
    page = st.navigation(_pages(), position="sidebar" if auth.logged_in(password) else "hidden")
    auth.require_login(password)

    url = settings.database_url
    problem = data.schema_problem(url)
    if problem is not None:
        st.title("cmr-monitor")
        st.error(f"The dashboard cannot use this database. {problem}")
        st.stop()

    if settings.dashboard_warm_cache_s > 0:
        data.start_cache_warmer(url, settings.dashboard_warm_cache_s)

    try:
        counts = data.status(url)
    except DatabaseUnavailable as exc:
        st.error(f"The database is not reachable right now ({safe_url(url)}): {exc}. Retry in a moment.")
        st.stop()
    filters = sidebar_filters(counts)
    with st.sidebar:
        st.divider()
        refresh = st.toggle("Auto-refresh", value=settings.dashboard_refresh_s > 0, key="auto_refresh")
        if refresh:
            default = min(_REFRESH_CHOICES_S, key=lambda s: abs(s - (settings.dashboard_refresh_s or 30)))
            every = st.select_slider(
                "Every (seconds)", options=_REFRESH_CHOICES_S, value=default, key="auto_refresh_s"
            )
            _auto_refresh(float(every))
        if st.button("Refresh now"):
            data.clear_all()
            st.rerun()
        st.caption(f"Database: {safe_url(url)}")
        if password is not None and st.button("Log out"):
            auth.logout()
            st.rerun()
    publish(PageContext(url=url, settings=settings, filters=filters, counts=counts))
    try:
        page.run()
    except DatabaseUnavailable as exc:
        st.error(f"The database is not reachable right now: {exc}. Retry in a moment.")


main()
