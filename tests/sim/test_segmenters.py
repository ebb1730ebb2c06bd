"""Tests of ``monitor.sim.segmenters``: deterministic, described, graded."""

from __future__ import annotations

import numpy as np
import pytest

from monitor.sim import (
    SEGMENTERS,
)
from tests.sim._helpers import rng


@pytest.mark.parametrize("name", list(SEGMENTERS))
def test_segmenters_are_deterministic_and_describe_themselves(ed_phantom, name):
    segmenter = SEGMENTERS[name]
    a, text_a = segmenter(ed_phantom.labels, rng(5), ed_phantom.spacing_mm)
    b, text_b = segmenter(ed_phantom.labels, rng(5), ed_phantom.spacing_mm)
    np.testing.assert_array_equal(a, b)
    assert text_a == text_b and text_a.startswith("noise=") and "," not in text_a
    assert a.dtype == np.uint8 and a.shape == ed_phantom.shape
