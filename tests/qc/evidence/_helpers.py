"""Phantoms for the evidence tests: a clean ACDC-like stack (slice 0 basal and filled, apex inside)."""

from __future__ import annotations

import numpy as np

from monitor.qc.evidence import EvidenceSettings, evaluate_evidence
from monitor.qc.labels import Structure
from monitor.qc.reasons import ReasonCode
from monitor.sim.phantoms import Phantom, make_phantom

RV, MYO, LV = 1, 2, 3


def clean_phantom(seed: int = 5, **overrides: object) -> Phantom:
    """10 slices, base at slice 0 (filled), apex in slice 9, no basal gap in the ring, RV on every slice."""
    geometry = {
        "n_slices": 10,
        "base_slice": -0.4,
        "apex_slice": 9.6,
        "basal_gap_deg": 0.0,
        "basal_rv": True,
        "rv_extent": 1.1,
        **overrides,
    }
    return make_phantom(np.random.default_rng(seed), **geometry)


def failed(labels: np.ndarray, spacing, image=None, settings=EvidenceSettings(), pgt=None):
    """{structure: {code: check}} of the failed checks of ``labels`` (pGT = the labels unless given)."""
    found = evaluate_evidence(labels, labels if pgt is None else pgt, spacing, image, settings)
    return {s: {c.code: c for c in checks if not c.passed} for s, checks in found.checks.items()}


def codes(labels: np.ndarray, spacing, **kwargs) -> set[tuple[Structure, ReasonCode]]:
    """(structure, code) of every failed check."""
    return {(s, code) for s, found in failed(labels, spacing, **kwargs).items() for code in found}
