"""Alertmanager configuration, checked with the real amtool and a real Alertmanager.

- `amtool check-config` passes.
- `amtool config routes test` sends a page to the paging receiver and a ticket to the ticket
  receiver, for every alert the rules define (with that alert's own labels).
- A real Alertmanager (Debian prometheus-alertmanager) on loopback inhibits a burn-rate ticket
  while the page of the same SLO fires, and not the ticket of the other SLO.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.deploy.test_prometheus import MONITORING_DOC, alert_rules
from tests.support.manifests import DEPLOY, K8S, one, render

CONFIG = DEPLOY / "observability" / "alertmanager" / "alertmanager.yml"
RECEIVER = {"page": "page", "ticket": "ticket"}


def amtool() -> str:
    found = shutil.which("amtool")
    if found is None:
        pytest.skip("amtool not installed (Debian package prometheus-alertmanager)")
    return found


def routes_test(*labels: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [amtool(), "config", "routes", "test", f"--config.file={CONFIG}", *labels],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_amtool_check_config() -> None:
    done = subprocess.run(
        [amtool(), "check-config", str(CONFIG)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


@pytest.mark.parametrize(("severity", "receiver"), RECEIVER.items())
def test_severity_routes_to_its_receiver(severity: str, receiver: str) -> None:
    done = routes_test(f"--verify.receivers={receiver}", f"severity={severity}")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == receiver
    # The check can fail: the other receiver is rejected.
    other = next(name for name in RECEIVER.values() if name != receiver)
    assert routes_test(f"--verify.receivers={other}", f"severity={severity}").returncode != 0


def test_every_alert_routes_by_its_severity() -> None:
    for rule in alert_rules():
        labels = {"alertname": rule["alert"], "namespace": "pleno", **rule["labels"]}
        done = routes_test(*(f"{key}={value}" for key, value in labels.items()))
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == RECEIVER[rule["labels"]["severity"]], labels


def test_an_alert_without_severity_still_reaches_a_receiver() -> None:
    assert routes_test("alertname=Unlabelled").stdout.strip() == "ticket"


def test_page_inhibits_the_ticket_of_the_same_slo() -> None:
    config = yaml.safe_load(CONFIG.read_text())
    rule = config["inhibit_rules"][0]
    assert rule["source_matchers"] == ['severity="page"']
    assert rule["target_matchers"] == ['severity="ticket"']
    assert {"alertname", "slo", "namespace"} <= set(rule["equal"])
    assert config["route"]["group_by"] == ["alertname", "namespace", "slo"]


def test_placeholder_receivers_are_documented() -> None:
    config = yaml.safe_load(CONFIG.read_text())
    receivers = {receiver["name"]: receiver for receiver in config["receivers"]}
    assert set(receivers) == {"page", "ticket"}
    # No integration: nothing is sent until an operator adds one (documented in both places).
    assert all(set(receiver) == {"name"} for receiver in receivers.values())
    assert "PLACEHOLDER" in CONFIG.read_text()
    assert "placeholder" in MONITORING_DOC.read_text().lower()


def test_configmap_holds_the_repository_file() -> None:
    stack = render(K8S / "stacks" / "monitoring")
    workload = one(stack, "Deployment", "alertmanager")
    (volume,) = [v for v in workload["spec"]["template"]["spec"]["volumes"] if "configMap" in v]
    config_map = one(stack, "ConfigMap", volume["configMap"]["name"])
    assert config_map["data"] == {"alertmanager.yml": CONFIG.read_text()}


# --- a real Alertmanager -------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[str]:
    binary = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
    if binary is None:
        pytest.skip("Alertmanager not installed (Debian package prometheus-alertmanager)")
    url = f"http://127.0.0.1:{_free_port()}"
    log = (tmp_path / "alertmanager.log").open("wb")
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={CONFIG}",
            f"--storage.path={tmp_path / 'data'}",
            f"--web.listen-address={url.removeprefix('http://')}",
            "--cluster.listen-address=",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            assert process.poll() is None, (tmp_path / "alertmanager.log").read_text()
            try:
                if httpx.get(f"{url}/-/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "Alertmanager did not become ready"
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()


def _burn_alert(slo: str, severity: str, long: str, short: str) -> dict[str, Any]:
    now = datetime.now(UTC)
    name = f"Pleno{slo.capitalize()}ErrorBudgetBurn"
    return {
        "labels": {
            "alertname": name,
            "namespace": "pleno",
            "slo": slo,
            "severity": severity,
            "long_window": long,
            "short_window": short,
        },
        "annotations": {"summary": "test"},
        "startsAt": now.isoformat(),
        "endsAt": (now + timedelta(minutes=10)).isoformat(),
    }


@pytest.mark.integration
def test_real_alertmanager_inhibits_the_ticket_while_the_page_fires(alertmanager: str) -> None:
    alerts = [
        _burn_alert("availability", "page", "1h", "5m"),
        _burn_alert("availability", "ticket", "1d", "2h"),
        _burn_alert("latency", "ticket", "1d", "2h"),  # another SLO: not inhibited
    ]
    assert httpx.post(f"{alertmanager}/api/v2/alerts", json=alerts, timeout=5).status_code == 200
    deadline = time.monotonic() + 15
    while True:
        received = httpx.get(f"{alertmanager}/api/v2/alerts", timeout=5).json()
        state = {
            (alert["labels"]["slo"], alert["labels"]["severity"]): alert["status"]
            for alert in received
        }
        if len(state) == 3 and state[("availability", "ticket")]["inhibitedBy"]:
            break
        assert time.monotonic() < deadline, state
        time.sleep(0.2)
    assert state[("availability", "ticket")]["state"] == "suppressed"
    assert state[("availability", "page")]["state"] == "active"
    assert state[("latency", "ticket")]["state"] == "active"
    assert not state[("latency", "ticket")]["inhibitedBy"]
