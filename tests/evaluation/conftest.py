"""Fixtures of the evaluation tests: one small synthetic dataset, paired and scored once per session."""

from __future__ import annotations

import csv
from pathlib import Path

import pandas as pd
import pytest

from monitor.evaluation import evaluate_cases, pair_cases, summarise
from monitor.model import Scorer
from monitor.sim import write_dataset

SEGMENTERS = ("good", "poor", "failing")  # best first, by construction
STRUCTURES = ("LV", "RV", "MYO")


@pytest.fixture(scope="session")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("evaluation")
    write_dataset(root, patients=3, seed=0, segmenters=SEGMENTERS, images=False)
    return root


@pytest.fixture(scope="session")
def scorer() -> Scorer:
    return Scorer(device="cpu")


@pytest.fixture(scope="session")
def evaluated(dataset: Path, scorer: Scorer) -> tuple[pd.DataFrame, list]:
    pairing = pair_cases(dataset / "gt", {s: dataset / "predictions" / s for s in SEGMENTERS})
    return evaluate_cases(pairing.pairs, scorer, batch_volumes=4)


@pytest.fixture(scope="session")
def summary(evaluated) -> dict:
    return summarise(evaluated[0])


def metrics_csv(dataset: Path, segmenter: str) -> list[dict[str, str]]:
    with (dataset / "predictions" / segmenter / "metrics.csv").open() as handle:
        return list(csv.DictReader(handle))
