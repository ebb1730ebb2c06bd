"""The Prometheus configuration and alert rules in deploy/prometheus: ``promtool check`` and the rules'
unit tests (``promtool test rules``), plus checks that every rule has firing and non-firing cases and
selects only metrics the daemon exports."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

from tests.telemetry._helpers import exported_metrics, promql_label_names, promql_metric_names
from tests.telemetry.conftest import DEPLOY

PROMETHEUS = DEPLOY / "prometheus"
RULES = PROMETHEUS / "rules" / "cmr-monitor.rules.yml"
RULE_TESTS = sorted((PROMETHEUS / "tests").glob("*.yml"))
#: Alerts the issue asks for, each with its promtool cases.
EXPECTED_ALERTS = {
    "CMRMonitorFlagRateHigh",
    "CMRMonitorErroneousBurst",
    "CMRMonitorScoringStalled",
    "CMRMonitorRejectionRateHigh",
    "CMRMonitorDown",
    "CMRMonitorNotReady",
}


def _run(args: list[str], cwd: Path = PROMETHEUS) -> str:
    result = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=60)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    return output


def _rules() -> list[dict]:
    return [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]


def test_promtool_check_config(promtool: str) -> None:
    output = _run([promtool, "check", "config", "prometheus.yml"])
    assert "1 rule files found" in output


def test_promtool_check_rules(promtool: str) -> None:
    output = _run([promtool, "check", "rules", str(RULES.relative_to(PROMETHEUS))])
    assert f"SUCCESS: {len(_rules())} rules found" in output


def test_promtool_rule_unit_tests(promtool: str) -> None:
    assert RULE_TESTS, "no rule tests in deploy/prometheus/tests"
    output = _run([promtool, "test", "rules", *(str(p.relative_to(PROMETHEUS)) for p in RULE_TESTS)])
    assert "SUCCESS" in output and "FAILED" not in output


def test_every_alert_has_firing_and_quiet_cases() -> None:
    alerts = {rule["alert"] for rule in _rules() if "alert" in rule}
    assert alerts == EXPECTED_ALERTS
    firing: set[str] = set()
    quiet: set[str] = set()
    for path in RULE_TESTS:
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                (firing if check.get("exp_alerts") else quiet).add(check["alertname"])
    assert firing == alerts, f"no firing case for {sorted(alerts - firing)}"
    assert quiet == alerts, f"no non-firing case for {sorted(alerts - quiet)}"
    severities = {
        rule["labels"]["severity"] for rule in _rules() if rule.get("alert") == "CMRMonitorFlagRateHigh"
    }
    assert severities == {"warning", "critical"}


def test_rules_select_exported_metrics_and_labels() -> None:
    exported = exported_metrics()
    known_labels = set().union(*exported.values()) | {"job", "instance"}
    for rule in _rules():
        expr = rule["expr"]
        names = promql_metric_names(expr)
        assert names, f"{rule.get('alert')}: selects no metric"
        assert names <= set(exported) | {"up"}, (
            f"{rule.get('alert')}: unknown {sorted(names - set(exported))}"
        )
        labels = promql_label_names(expr)
        assert labels <= known_labels, f"{rule.get('alert')}: unknown labels {sorted(labels - known_labels)}"
        assert rule["labels"]["severity"] in ("warning", "critical")
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]


def test_scrape_job_matches_the_rules() -> None:
    """The down alert selects job="cmr-monitor", the scrape job's name."""
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert "cmr-monitor" in jobs
    assert config["rule_files"] == ["rules/*.rules.yml"]
    down = next(rule for rule in _rules() if rule.get("alert") == "CMRMonitorDown")
    assert 'job="cmr-monitor"' in down["expr"]
