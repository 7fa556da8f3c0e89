"""The production image, built from the project's unmodified Dockerfile and run with podman.

Base images cannot be pulled here, so the test builds a stand-in for python:3.11-slim with
debootstrap (a minimal Debian bookworm with python3 and venv), imports it as a local image and
passes it as BASE_IMAGE. The stand-in carries the host's CA bundle and a pip.conf with only the
settings that work inside a build (no file:// indexes, find-links or constraints): that is test
plumbing, so it lives here and not in the Dockerfile. The stand-in is cached between runs.
"""

from __future__ import annotations

import configparser
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.conftest import free_port

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
BASE_TAG = "localhost/pleno-test-base:bookworm"
IMAGE_TAG = "localhost/pleno:integration-test"
# The rootfs tarball survives `make clean` and a fresh clone; the podman image store is the
# first-level cache, this the second.
BASE_TARBALL = Path(os.environ.get("PLENO_TEST_BASE_TARBALL", "/var/tmp/pleno-test-base.tar"))  # noqa: S108
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
BUILD_COMMIT = "c0ffee1"
BUILD_DATE = "2026-01-02T03:04:05Z"
# Podman on these machines needs explicit ulimits; containers use host networking or none.
LIMITS = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]
# crun (podman's default) refuses these machines' hybrid cgroup layout; runc accepts it.
RUNTIME = ["--runtime", "runc"] if shutil.which("runc") else []
UID = "10001"
STOP_TIMEOUT = 20

if shutil.which("podman") is None or shutil.which("debootstrap") is None:
    pytest.skip(
        "needs podman and debootstrap (Debian packages `podman`, `debootstrap`)",
        allow_module_level=True,
    )


def podman(
    *args: str, timeout: float = 120, check: bool = True
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        ["podman", *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"podman {' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
        )
    return result


def debian_mirror() -> str:
    """The machine's configured Debian mirror for bookworm (one-line or deb822 sources)."""
    sources = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
    for source in sources:
        if not source.is_file():
            continue
        text = source.read_text(errors="replace")
        for stanza in re.split(r"\n\s*\n", text):
            uris = re.search(r"^URIs:\s*(.+)$", stanza, re.MULTILINE)
            suites = re.search(r"^Suites:\s*(.+)$", stanza, re.MULTILINE)
            if uris and suites and "bookworm" in suites[1].split():
                return uris[1].split()[0]
        for line in text.splitlines():
            fields = line.split()
            if len(fields) >= 3 and fields[0] == "deb" and fields[2] == "bookworm":
                return next(field for field in fields[1:] if "://" in field)
    return "http://deb.debian.org/debian"


def host_pip_settings() -> dict[str, str]:
    """The host's pip configuration (files, then PIP_* variables) as key -> value."""
    listed = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True, check=False
    ).stdout
    settings: dict[str, str] = {}
    for line in listed.splitlines():
        key, _, value = line.partition("=")
        settings[key.rpartition(".")[2]] = value.strip().strip("'\"")
    for key, value in os.environ.items():
        if key.startswith("PIP_"):
            settings[key[4:].lower().replace("_", "-")] = value
    return settings


def container_pip_conf(settings: dict[str, str]) -> str:
    """A pip.conf with what works inside a build: remote indexes, timeout, the CA bundle."""
    conf = configparser.ConfigParser()
    conf["global"] = {"cert": "/etc/ssl/certs/ca-certificates.crt"}
    for key in ("index-url", "extra-index-url", "trusted-host"):
        remote = [url for url in settings.get(key, "").split() if not url.startswith("file:")]
        if remote:
            conf["global"][key] = " ".join(remote)
    for key in ("timeout", "default-timeout"):
        if key in settings:
            conf["global"]["timeout"] = settings[key]
    lines: list[str] = []
    for section in conf.sections():
        lines.append(f"[{section}]")
        lines.extend(f"{key} = {value}" for key, value in conf[section].items())
    return "\n".join(lines) + "\n"


def build_base_tarball() -> None:
    if os.geteuid() != 0:
        pytest.skip("debootstrap needs root to build the stand-in base image")
    with tempfile.TemporaryDirectory(dir="/var/tmp", prefix="pleno-rootfs-") as scratch:
        rootfs = Path(scratch) / "rootfs"
        subprocess.run(
            [
                "debootstrap",
                "--variant=minbase",
                "--include=python3,python3-venv,python-is-python3,ca-certificates",
                "bookworm",
                str(rootfs),
                debian_mirror(),
            ],
            check=True,
            capture_output=True,
            timeout=600,
        )
        settings = host_pip_settings()
        bundle = Path(settings.get("cert", "/etc/ssl/certs/ca-certificates.crt"))
        if bundle.is_file():
            shutil.copyfile(bundle, rootfs / "etc/ssl/certs/ca-certificates.crt")
        (rootfs / "etc/pip.conf").write_text(container_pip_conf(settings))
        # Like the real slim image: no apt lists or package caches.
        for cache in ("var/cache/apt/archives", "var/lib/apt/lists"):
            shutil.rmtree(rootfs / cache, ignore_errors=True)
        partial = BASE_TARBALL.with_suffix(".partial")
        with partial.open("wb") as out:
            subprocess.run(["tar", "-C", str(rootfs), "-c", "."], stdout=out, check=True)
        partial.replace(BASE_TARBALL)


@pytest.fixture(scope="session")
def base_image() -> str:
    if podman("image", "exists", BASE_TAG, check=False).returncode == 0:
        return BASE_TAG
    if not BASE_TARBALL.is_file():
        build_base_tarball()
    podman("import", str(BASE_TARBALL), BASE_TAG, timeout=300)
    return BASE_TAG


@pytest.fixture(scope="session")
def image(base_image: str) -> str:
    started = time.monotonic()
    podman(
        "build",
        *RUNTIME,
        *LIMITS,
        "--network", "host",
        "--format", "docker",  # OCI image config has no HEALTHCHECK
        "--build-arg", f"BASE_IMAGE={base_image}",
        "--build-arg", f"VERSION={VERSION}",
        "--build-arg", f"COMMIT={BUILD_COMMIT}",
        "--build-arg", f"BUILD_DATE={BUILD_DATE}",
        "--tag", IMAGE_TAG,
        "--file", str(ROOT / "Dockerfile"),
        str(ROOT),
        timeout=900,
    )  # fmt: skip
    built_in = time.monotonic() - started
    size = int(podman("image", "inspect", "--format", "{{.Size}}", IMAGE_TAG).stdout)
    base = int(podman("image", "inspect", "--format", "{{.Size}}", base_image).stdout)
    report = (
        f"image {IMAGE_TAG} on the stand-in base: {size / 1e6:.1f} MB "
        f"(base {base / 1e6:.1f} MB, service layers {(size - base) / 1e6:.1f} MB); "
        f"built in {built_in:.0f}s\n"
    )
    (ROOT / "var").mkdir(exist_ok=True)
    (ROOT / "var/image-size.txt").write_text(report)
    print(report)  # noqa: T201 - shown with -s, and kept in var/image-size.txt
    return IMAGE_TAG


def inspect(image: str) -> dict[str, object]:
    config: dict[str, object] = json.loads(podman("image", "inspect", image).stdout)[0]["Config"]
    return config


def test_image_runs_as_the_unprivileged_numeric_user(image: str) -> None:
    config = inspect(image)
    assert config["User"] == f"{UID}:{UID}"
    result = podman(
        "run", "--rm", *RUNTIME, *LIMITS, "--network", "none", "--entrypoint", "id", image, "-u"
    )
    assert result.stdout.strip() == UID
    labels = config["Labels"]
    assert isinstance(labels, dict)
    assert labels["org.opencontainers.image.revision"] == BUILD_COMMIT
    assert labels["org.opencontainers.image.created"] == BUILD_DATE


def test_final_image_has_no_build_tools_or_pip_in_the_venv(image: str) -> None:
    script = (
        "import importlib.util, shutil, sys; "
        "print(sys.prefix, bool(importlib.util.find_spec('pip')), "
        "[tool for tool in ('gcc', 'cc', 'make') if shutil.which(tool)])"
    )
    result = podman(
        "run",
        "--rm",
        *RUNTIME,
        *LIMITS,
        "--network",
        "none",
        "--entrypoint",
        "python",
        image,
        "-c",
        script,
    )
    assert result.stdout.strip() == "/opt/venv False []"


@pytest.fixture
def container(image: str) -> Iterator[tuple[str, str]]:
    """The service, locked down: read-only root, no capabilities, tmpfs /tmp, a data volume."""
    name = f"pleno-test-{uuid.uuid4().hex[:8]}"
    # A named volume starts as a copy of the image's /var/lib/pleno, owned by 10001.
    volume = f"{name}-data"
    port = free_port()
    podman(
        "run", "--detach", "--name", name, *RUNTIME, *LIMITS,
        "--network", "host",
        "--read-only",
        "--tmpfs", "/tmp:rw,nosuid,nodev,mode=1777",  # noqa: S108 - the container's own tmpfs
        "--volume", f"{volume}:/var/lib/pleno",
        "--cap-drop", "ALL",
        "--security-opt", "no-new-privileges",
        "--health-interval", "0",  # no systemd timer here; the test runs the check itself
        "--env", f"PLENO_PORT={port}",
        "--env", "PLENO_SHUTDOWN_DELAY=1",
        image,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            state = podman("inspect", "--format", "{{.State.Status}}", name).stdout.strip()
            if state != "running" or time.monotonic() > deadline:
                logs = podman("logs", name, check=False)
                raise AssertionError(f"container {state}, not ready:\n{logs.stdout}{logs.stderr}")
            time.sleep(0.1)
        yield name, url
    finally:
        podman("rm", "--force", "--time", "0", name, check=False)
        podman("volume", "rm", "--force", volume, check=False)


def test_locked_down_container_serves_and_stops_gracefully(container: tuple[str, str]) -> None:
    name, url = container
    with httpx.Client(base_url=url, timeout=5) as client:
        assert client.get("/health").status_code == 200
        assert client.get("/ready").status_code == 200
        version = client.get("/version").json()
        assert version["version"] == VERSION
        assert (version["commit"], version["build_date"]) == (BUILD_COMMIT, BUILD_DATE)

        created = client.post("/api/v1/items", json={"name": "boxed", "quantity": 3})
        assert created.status_code == 201, created.text
        fetched = client.get(created.headers["Location"])
        assert fetched.status_code == 200
        assert fetched.json()["name"] == "boxed"

    # The image's own HEALTHCHECK command, run by podman inside the container.
    health = podman("healthcheck", "run", name, check=False)
    assert health.returncode == 0, f"healthcheck failed: {health.stdout}{health.stderr}"

    # SIGTERM with a request in flight: it completes, and the process exits 0 on its own.
    in_flight: dict[str, int] = {}

    def slow_request() -> None:
        in_flight["status"] = httpx.get(f"{url}/delay/2", timeout=15).status_code

    worker = threading.Thread(target=slow_request)
    worker.start()
    time.sleep(0.3)
    started = time.monotonic()
    podman("stop", "--time", str(STOP_TIMEOUT), name, timeout=STOP_TIMEOUT + 30)
    stopped_in = time.monotonic() - started
    worker.join(timeout=15)
    logs = podman("logs", name).stdout + podman("logs", name).stderr

    assert in_flight.get("status") == 200, logs
    exit_code = podman("inspect", "--format", "{{.State.ExitCode}}", name).stdout.strip()
    assert exit_code == "0", logs
    assert stopped_in < STOP_TIMEOUT / 2, f"stop took {stopped_in:.1f}s:\n{logs}"
    # JSON logs by default: every line the service wrote parses.
    lines = [line for line in logs.splitlines() if line.strip()]
    assert lines
    assert all(json.loads(line) for line in lines), logs
