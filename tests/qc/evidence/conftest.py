"""Fixtures of the evidence tests."""

from __future__ import annotations

import pytest

from monitor.sim.phantoms import Phantom
from tests.qc.evidence._helpers import clean_phantom


@pytest.fixture
def phantom() -> Phantom:
    return clean_phantom()
