"""Fixtures of the simulation tests: phantoms, and (shared with the dashboard suite) a seeded dashboard
database; the demo run is the session's (``tests/conftest.py``)."""

import pytest

from monitor.sim import Phantom, make_patient, make_phantom
from tests.dashboard.conftest import seeded_sqlite  # noqa: F401  (fixture)
from tests.sim._helpers import SEEDS, rng


@pytest.fixture(scope="module")
def patients() -> list[tuple[Phantom, Phantom]]:
    return [make_patient(rng(seed)) for seed in SEEDS]


@pytest.fixture(scope="module")
def ed_phantom() -> Phantom:
    return make_phantom(rng(3))
