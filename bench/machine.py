"""Describe the machine and software a run measured, for the report's header."""

from __future__ import annotations

import contextlib
import os
import platform
import subprocess
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

# What decides the numbers: the server stack, the telemetry libraries on both sides, the app.
PACKAGES = (
    "pleno",
    "fastapi",
    "starlette",
    "uvicorn",
    "uvloop",
    "httptools",
    "pydantic",
    "prometheus-client",
    "opentelemetry-sdk",
    "opentelemetry-exporter-otlp-proto-http",
    "prometheus-fastapi-instrumentator",
    "python-json-logger",
    "opentelemetry-instrumentation-fastapi",
)


@dataclass(frozen=True)
class Machine:
    cpu_model: str
    cpus: int
    memory_gib: float
    kernel: str
    os_name: str
    python: str
    wrk: str
    git: str
    packages: dict[str, str]


def describe(repo: Path) -> Machine:
    return Machine(
        cpu_model=_cpuinfo_field("model name") or platform.processor() or "unknown",
        cpus=os.cpu_count() or 1,
        memory_gib=_meminfo_kib("MemTotal") / 1024 / 1024,
        kernel=f"{platform.system()} {platform.release()} {platform.machine()}",
        os_name=_os_release(),
        python=f"{platform.python_implementation()} {platform.python_version()}",
        wrk=_first_line(["wrk", "--version"]) or "unknown",
        git=_git(repo),
        packages={name: _version(name) for name in PACKAGES},
    )


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def _cpuinfo_field(name: str) -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == name:
                return value.strip()
    return ""


def _meminfo_kib(name: str) -> int:
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith(f"{name}:"):
                return int(line.split()[1])
    return 0


def _os_release() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.partition("=")[2].strip('"')
    return "unknown"


def _first_line(command: list[str]) -> str:
    # `wrk --version` prints its banner and exits 1; only the banner matters.
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        done = subprocess.run(  # noqa: S603 - fixed argv, no shell
            command, capture_output=True, text=True, timeout=10, check=False
        )
        lines = (done.stdout or done.stderr).strip().splitlines()
        return lines[0] if lines else ""
    return ""


def _git(repo: Path) -> str:
    commit = _first_line(["git", "-C", str(repo), "rev-parse", "--short=12", "HEAD"])
    if not commit:
        return "unknown"
    dirty = _first_line(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"])
    return f"{commit} (uncommitted changes)" if dirty else commit


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"
