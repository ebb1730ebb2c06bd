"""The Grafana dashboard and its provisioning in deploy/grafana: the JSON parses, every query selects
metrics (and labels) that the daemon exports, and the provisioning matches the compose stack."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import yaml

from tests.telemetry._helpers import exported_metrics, promql_label_names, promql_metric_names
from tests.telemetry.conftest import DEPLOY

GRAFANA = DEPLOY / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "cmr-monitor.json"


def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def panels(board: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in board["panels"]:
        yield panel
        yield from panel.get("panels", [])


def dashboard_queries() -> list[tuple[str, str]]:
    """(panel title, expression) of every query, template variables' queries included."""
    board = dashboard()
    queries = [
        (panel["title"], target["expr"]) for panel in panels(board) for target in panel.get("targets", [])
    ]
    for variable in board["templating"]["list"]:
        if variable["type"] == "query":
            queries.append((f"${variable['name']}", variable["query"]["query"]))
    return queries


def test_dashboard_parses_and_covers_the_issue() -> None:
    board = dashboard()
    assert board["uid"] == "cmr-monitor" and board["panels"]
    titles = " / ".join(panel["title"] for panel in panels(board)).lower()
    for topic in ("flag rate", "pdsc", "phd", "throughput", "latency", "queue", "rejections"):
        assert topic in titles, topic
    exprs = " ".join(expr for _, expr in dashboard_queries())
    assert "histogram_quantile" in exprs
    ids = [panel["id"] for panel in panels(board)]
    assert len(ids) == len(set(ids))


def test_every_query_selects_exported_metrics() -> None:
    exported = exported_metrics()
    known_labels = set().union(*exported.values()) | {"job", "instance"}
    for title, expr in dashboard_queries():
        if expr.startswith("label_values("):
            expr = expr.removeprefix("label_values(").rsplit(",", 1)[0]
        names = promql_metric_names(expr)
        assert names, f"{title}: selects no metric: {expr}"
        assert names <= set(exported) | {"up"}, f"{title}: not exported: {sorted(names - set(exported))}"
        labels = promql_label_names(expr)
        assert labels <= known_labels, f"{title}: unknown labels {sorted(labels - known_labels)}"


def test_provisioning_points_at_the_stack() -> None:
    datasources = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yaml").read_text())
    (source,) = datasources["datasources"]
    assert source["type"] == "prometheus" and source["url"] == "http://prometheus:9090"
    board = dashboard()
    variable = next(v for v in board["templating"]["list"] if v["type"] == "datasource")
    assert variable["current"]["value"] == source["uid"]
    for panel in panels(board):
        for target in panel.get("targets", []):
            assert target["datasource"]["uid"] == "${datasource}"
    providers = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "cmr-monitor.yaml").read_text())
    (provider,) = providers["providers"]
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    mounts = compose["services"]["grafana"]["volumes"]
    assert f"./grafana/dashboards:{provider['options']['path']}:ro" in mounts
