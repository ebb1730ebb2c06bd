"""Optional password login, so that patient data is not open to anyone on the network.

The password comes from Streamlit secrets (``dashboard_password`` in ``.streamlit/secrets.toml``) or,
failing that, the setting ``dashboard_password`` (environment ``CMR_MONITOR_DASHBOARD_PASSWORD``). Without
either, the dashboard has no login; bind it to 127.0.0.1 then (the ``cmr-monitor dashboard`` default).
Passwords are compared in constant time (``hmac.compare_digest``); a wrong one costs a second.
"""

from __future__ import annotations

import hmac
import logging
import time
from typing import Any

import streamlit as st

__all__ = ["SECRET_KEY", "configured_password", "logged_in", "logout", "password_matches", "require_login"]

log = logging.getLogger(__name__)

#: Key of the password in Streamlit secrets.
SECRET_KEY = "dashboard_password"
_STATE_KEY = "cmr_monitor_authenticated"
_FAILED_LOGIN_DELAY_S = 1.0


def password_matches(given: str, expected: str) -> bool:
    """Whether ``given`` equals ``expected``, compared in constant time (UTF-8 bytes)."""
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def configured_password(secrets: Any, fallback: str | None) -> str | None:
    """The login password: ``secrets[SECRET_KEY]`` when set, else ``fallback``; None (or empty) = no login.

    Args:
        secrets: ``st.secrets`` or any mapping; a missing secrets file counts as no secret.
        fallback: the password from the settings (environment), or None.
    """
    try:
        value = secrets[SECRET_KEY]
    except (KeyError, FileNotFoundError, AttributeError):
        value = None
    if value is not None and str(value):
        return str(value)
    return fallback or None


def logged_in(expected: str | None) -> bool:
    """Whether this session may see data: no login configured, or it has logged in."""
    return expected is None or bool(st.session_state.get(_STATE_KEY))


def require_login(expected: str | None) -> None:
    """Stop the page behind a login form unless this session has logged in; nothing when ``expected`` is None.

    Call before any data is read. The login lasts for the browser session (a reload asks again).
    """
    if logged_in(expected):
        return
    st.title("cmr-monitor")
    st.caption("This dashboard shows patient data. Log in to continue.")
    with st.form("login", clear_on_submit=True):
        given = st.text_input("Password", type="password", key="login_password")
        submitted = st.form_submit_button("Log in")
    if submitted:
        if password_matches(given or "", expected):
            st.session_state[_STATE_KEY] = True
            log.info("dashboard login", extra={"action": "login", "outcome": "ok"})
            st.rerun()
        log.warning("dashboard login refused", extra={"action": "login", "outcome": "wrong_password"})
        time.sleep(_FAILED_LOGIN_DELAY_S)
        st.error("Wrong password.")
    st.stop()


def logout() -> None:
    """Forget this session's login."""
    st.session_state.pop(_STATE_KEY, None)
