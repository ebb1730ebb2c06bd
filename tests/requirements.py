"""What a test needs from the machine: missing locally, it is skipped; missing in CI, the run fails.

CI (``CI=true``, set by ``.ci/run``) installs PostgreSQL's client side, Chromium and Prometheus, so a
missing one there is a broken set-up, not a reason to skip.
"""

from __future__ import annotations

import os
from typing import NoReturn

import pytest

__all__ = ["skip_or_fail"]


def skip_or_fail(message: str) -> NoReturn:
    """Skip the test with ``message``, or fail it under ``CI=true``."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message}; CI=true requires it", pytrace=False)
    pytest.skip(message)
