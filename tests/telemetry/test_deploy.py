"""The deployment files in deploy/: the compose stack, the Dockerfile and the systemd units.

Docker cannot run here (no engine), so the compose file is checked structurally: the services, their
health checks, the start-up order (depends_on conditions), the mounted files, the ports, and that every
command the stack runs is a real ``cmr-monitor`` command line (subcommand and options). The systemd
units go through ``systemd-analyze verify`` when it is installed (ExecStart pointed at this checkout's
``cmr-monitor``), and through the same command-line check.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from configparser import ConfigParser
from pathlib import Path

import pytest
import yaml

from tests.telemetry._helpers import check_cli_args
from tests.telemetry.conftest import DEPLOY

SERVICES = {"postgres", "migrate", "daemon", "dashboard", "prometheus", "grafana"}
CONDITIONS = {"service_started", "service_healthy", "service_completed_successfully"}
SYSTEMD = DEPLOY / "systemd"
UNITS = sorted(SYSTEMD.glob("*.service"))


def _compose(name: str = "compose.yaml") -> dict:
    return yaml.safe_load((DEPLOY / name).read_text())


def _entrypoint() -> list[str]:
    text = (DEPLOY / "Dockerfile").read_text()
    (line,) = [ln for ln in text.splitlines() if ln.startswith("ENTRYPOINT")]
    return json.loads(line.removeprefix("ENTRYPOINT"))


def _option(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


def test_compose_services_health_checks_and_order() -> None:
    services = _compose()["services"]
    assert set(services) == SERVICES
    for name, service in services.items():
        if name != "migrate":  # a one-shot job: it completes instead of becoming healthy
            test = service["healthcheck"]["test"]
            assert test[0] in ("CMD", "CMD-SHELL") and len(test) > 1, name
            assert service["restart"] == "unless-stopped", name
        for target, dependency in service.get("depends_on", {}).items():
            assert target in services, (name, target)
            assert dependency["condition"] in CONDITIONS, (name, target)
            if dependency["condition"] == "service_healthy":
                assert "healthcheck" in services[target], (name, target)
            if dependency["condition"] == "service_completed_successfully":
                assert services[target]["restart"] == "no", (name, target)
    order = {
        name: {t: d["condition"] for t, d in s.get("depends_on", {}).items()} for name, s in services.items()
    }
    assert order["migrate"] == {"postgres": "service_healthy"}
    for app in ("daemon", "dashboard"):
        assert order[app] == {"postgres": "service_healthy", "migrate": "service_completed_successfully"}
    assert order["grafana"] == {"prometheus": "service_healthy"}
    assert "daemon" not in order["prometheus"]  # Prometheus must run to alert when the daemon is down


def test_compose_commands_are_real_cmr_monitor_commands() -> None:
    """The cmr-monitor services run the image's entry point (cmr-monitor) with their command."""
    services = _compose()["services"]
    assert _entrypoint() == ["cmr-monitor"]
    commands = {}
    for name in ("migrate", "daemon", "dashboard"):
        service = services[name]
        assert service["build"]["dockerfile"] == "deploy/Dockerfile" and "entrypoint" not in service
        commands[name] = [str(word) for word in service["command"]]
        check_cli_args(commands[name])
    assert commands["migrate"][:2] == ["db", "upgrade"]
    assert commands["daemon"][0] == "watch" and commands["dashboard"][0] == "dashboard"
    # the health checks and the scrape target use the ports the commands open
    daemon, dashboard = commands["daemon"], commands["dashboard"]
    assert _option(daemon, "--metrics-addr") == "0.0.0.0"
    port = _option(daemon, "--metrics-port")
    assert f":{port}/healthz" in " ".join(services["daemon"]["healthcheck"]["test"])
    assert f":{_option(dashboard, '--port')}/_stcore/health" in " ".join(
        services["dashboard"]["healthcheck"]["test"]
    )
    scrape = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())["scrape_configs"]
    targets = next(job for job in scrape if job["job_name"] == "cmr-monitor")["static_configs"][0]["targets"]
    assert targets == [f"daemon:{port}"]
    # the daemon is given more time to stop than its own shutdown timeout (30 s)
    assert int(services["daemon"]["stop_grace_period"].removesuffix("s")) > 30


def test_compose_mounts_ports_and_secrets() -> None:
    services = _compose()["services"]
    for name, service in services.items():
        for mapping in service.get("ports", []):
            assert mapping.startswith("127.0.0.1:"), f"{name} publishes {mapping} beyond loopback"
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("./"):
                assert (DEPLOY / source).exists(), f"{name} mounts missing {source}"
    assert "ports" not in services["daemon"]  # /metrics is scraped inside the compose network only
    environment = services["daemon"]["environment"]
    assert environment["CMR_MONITOR_DATABASE_URL"].startswith("postgresql://cmr:${POSTGRES_PASSWORD:?")
    assert "@postgres:5432/" in environment["CMR_MONITOR_DATABASE_URL"]
    assert services["dashboard"]["environment"]["CMR_MONITOR_DASHBOARD_PASSWORD"].startswith("${")
    assert services["grafana"]["environment"]["GF_SECURITY_ADMIN_PASSWORD"].startswith("${")
    assert "/data/incoming" in " ".join(services["daemon"]["volumes"])
    datasource = yaml.safe_load((DEPLOY / "grafana/provisioning/datasources/prometheus.yaml").read_text())
    assert datasource["datasources"][0]["url"] == "http://prometheus:9090"
    assert "--web.listen-address=0.0.0.0:9090" in services["prometheus"]["command"]
    example = (DEPLOY / ".env.example").read_text()
    for variable in set(re.findall(r"\$\{([A-Z_]+):\?", (DEPLOY / "compose.yaml").read_text())):
        assert f"\n{variable}=" in f"\n{example}", f"{variable} missing from deploy/.env.example"
    assert ".env" in (DEPLOY / ".gitignore").read_text().split()


def test_compose_gpu_override() -> None:
    daemon = _compose("compose.gpu.yaml")["services"]["daemon"]
    (device,) = daemon["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"]
    assert daemon["environment"]["CMR_MONITOR_DEVICE"] == "cuda"
    assert daemon["build"]["args"]["TORCH_INDEX_URL"].startswith("https://download.pytorch.org/whl/cu")


def test_dockerfile_pins_cpu_torch_and_runs_unprivileged() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    assert re.search(r'"torch==2\.13\.0"', text)
    assert "ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu" in text
    assert re.search(r"^USER cmr-monitor$", text, re.MULTILINE)
    assert "pip install -e ." in text  # editable: the Alembic scripts stay next to the package
    for path in re.findall(r"^COPY (\S+) ", text, re.MULTILINE):
        assert (DEPLOY.parent / path).exists(), path
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text().split()
    for path in ("monitor/", "dashboard/", "migrations/", "pyproject.toml"):
        assert f"!{path}" in ignore


def _unit(path: Path) -> ConfigParser:
    parser = ConfigParser(strict=False, interpolation=None, delimiters=("=",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(path.read_text().replace("\\\n", " "))
    return parser


def test_systemd_units_run_real_commands_with_hardening() -> None:
    assert {p.name for p in UNITS} == {
        "cmr-monitor-watch.service",
        "cmr-monitor-dashboard.service",
        "cmr-monitor-db-upgrade.service",
    }
    env_file = (SYSTEMD / "cmr-monitor.env").read_text()
    defined = set(re.findall(r"^#?([A-Z_]+)=", env_file, re.MULTILINE))
    for path in UNITS:
        service = _unit(path)["Service"]
        words = shlex.split(service["ExecStart"])
        assert words[0] == "/opt/cmr-monitor/venv/bin/cmr-monitor", path.name
        check_cli_args(words[1:])
        used = set(re.findall(r"\$\{?([A-Z_]+)\}?", service["ExecStart"]))
        assert used <= defined, f"{path.name}: {sorted(used - defined)} not in cmr-monitor.env"
        assert service["EnvironmentFile"] == "/etc/cmr-monitor/cmr-monitor.env"
        assert service["User"] == "cmr-monitor"
        for key, value in {
            "NoNewPrivileges": "yes",
            "ProtectSystem": "strict",
            "ProtectHome": "yes",
            "PrivateTmp": "yes",
            "CapabilityBoundingSet": "",
            "UMask": "0077",
        }.items():
            if key != "UMask" or path.name != "cmr-monitor-db-upgrade.service":
                assert service.get(key) == value, (path.name, key)
    watch = _unit(SYSTEMD / "cmr-monitor-watch.service")
    assert "cmr-monitor-db-upgrade.service" in watch["Unit"]["After"]
    assert int(watch["Service"]["TimeoutStopSec"].removesuffix("s")) > 30
    assert "CMR_MONITOR_DATABASE_URL=" in env_file


def test_systemd_analyze_verify(tmp_path: Path) -> None:
    """``systemd-analyze verify`` with ExecStart pointed at this checkout's cmr-monitor (the install path
    /opt/cmr-monitor does not exist here); any warning it prints fails the test."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze not installed; the units were checked structurally only")
    executable = Path(sys.executable).with_name("cmr-monitor")
    assert executable.exists(), executable
    copies = []
    for path in UNITS:
        copy = tmp_path / path.name
        copy.write_text(path.read_text().replace("/opt/cmr-monitor/venv/bin/cmr-monitor", str(executable)))
        copies.append(str(copy))
    result = subprocess.run(
        [analyze, "verify", *copies], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    output = (result.stdout + result.stderr).strip()
    assert result.returncode == 0 and not output, output
