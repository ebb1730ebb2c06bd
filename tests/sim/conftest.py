"""Fixtures of the simulation tests: phantoms, and (shared with the dashboard and daemon suites) a seeded
dashboard database and the small trained checkpoint."""

import pytest

from monitor.sim import Phantom, make_patient, make_phantom
from tests.daemon.conftest import checkpoint  # noqa: F401  (fixture)
from tests.dashboard.conftest import seeded_sqlite  # noqa: F401  (fixture)
from tests.sim._helpers import SEEDS, rng


@pytest.fixture(scope="module")
def patients() -> list[tuple[Phantom, Phantom]]:
    return [make_patient(rng(seed)) for seed in SEEDS]


@pytest.fixture(scope="module")
def ed_phantom() -> Phantom:
    return make_phantom(rng(3))
