"""Evidence settings: validation, and how ``monitor.config.Settings`` builds them from the environment."""

from __future__ import annotations

import pytest

from monitor.config import Settings
from monitor.qc.evidence import EvidenceSettings
from monitor.qc.levels import FlagLevel
from monitor.qc.reasons import ReasonCode


def test_bad_tolerances_are_refused_with_the_name():
    with pytest.raises(ValueError, match="centroid_jump_mm"):
        EvidenceSettings(centroid_jump_mm=-1.0)
    with pytest.raises(ValueError, match="myo_open_fraction"):
        EvidenceSettings(myo_open_fraction=1.5)
    assert EvidenceSettings(edge_bias_px=-2.0).edge_bias_px == -2.0  # the one signed field


def test_settings_from_the_environment(monkeypatch):
    monkeypatch.setenv("CMR_MONITOR_EVIDENCE_SPARE_MM", "20")
    monkeypatch.setenv("CMR_MONITOR_EVIDENCE_STACK_MARGIN", "false")
    monkeypatch.setenv("CMR_MONITOR_EVIDENCE_TOLERANCES", '{"centroid_jump_mm": 25}')
    monkeypatch.setenv("CMR_MONITOR_REASON_SEVERITIES", '{"holes": "suspicious", "stack_margin": "ok"}')
    settings = Settings()
    evidence = settings.evidence_settings()
    assert (evidence.spare_mm, evidence.stack_margin, evidence.centroid_jump_mm) == (20.0, False, 25.0)
    assert evidence.spare_slices(10.0) == 2
    policy = settings.flag_policy()
    assert policy.severity(ReasonCode.HOLES) == FlagLevel.SUSPICIOUS
    assert policy.severity(ReasonCode.STACK_MARGIN) == FlagLevel.OK
    assert policy.severity(ReasonCode.RV_POSITION) == FlagLevel.ERRONEOUS  # the default
    assert (policy.evidence_flags, policy.fail_probability) == ("hard", 0.5)
    assert policy.severity(ReasonCode.MYO_OPEN) == FlagLevel.OK  # recorded only, by default
    monkeypatch.setenv("CMR_MONITOR_EVIDENCE_FLAGS", "all")
    monkeypatch.setenv("CMR_MONITOR_FAIL_PROBABILITY", "0.3")
    review = Settings().flag_policy()
    assert (review.evidence_flags, review.fail_probability) == ("all", 0.3)
    assert review.severity(ReasonCode.MYO_OPEN) == FlagLevel.SUSPICIOUS
    monkeypatch.setenv("CMR_MONITOR_EVIDENCE", "false")
    assert Settings().evidence_settings() is None


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("CMR_MONITOR_EVIDENCE_TOLERANCES", '{"no_such_tolerance": 1}', "no_such_tolerance"),
        ("CMR_MONITOR_REASON_SEVERITIES", '{"no_such_code": "ok"}', "no_such_code"),
        ("CMR_MONITOR_REASON_SEVERITIES", '{"holes": "loud"}', "holes"),
        ("CMR_MONITOR_EVIDENCE_FLAGS", "some", "evidence_flags"),
    ],
    ids=["tolerance", "code", "level", "evidence-flags"],
)
def test_bad_settings_name_what_is_wrong(monkeypatch, name, value, message):
    monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=message):
        Settings()
