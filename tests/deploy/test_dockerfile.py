"""Policy for the production image, read from the Dockerfile itself (issue 4).

hadolint and checkov (`make lint`) check general practice; this checks Pleno's own rules. The
integration test tests/integration/test_container.py builds and runs the image for real.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
Instruction = tuple[str, str]


def instructions(text: str) -> list[Instruction]:
    """(KEYWORD, arguments) per instruction: comments dropped, continuations joined."""
    result: list[Instruction] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, args = (pending + line).partition(" ")
        result.append((keyword.upper(), args.strip()))
        pending = ""
    return result


@pytest.fixture(scope="module")
def parsed() -> list[Instruction]:
    return instructions(DOCKERFILE.read_text())


def stages(parsed: list[Instruction]) -> list[list[Instruction]]:
    """Instructions grouped by FROM; element 0 holds the global ARGs before the first FROM."""
    grouped: list[list[Instruction]] = [[]]
    for instruction in parsed:
        if instruction[0] == "FROM":
            grouped.append([])
        grouped[-1].append(instruction)
    return grouped


def final_stage(parsed: list[Instruction]) -> list[Instruction]:
    return stages(parsed)[-1]


def args_of(stage: list[Instruction], keyword: str) -> list[str]:
    return [args for key, args in stage if key == keyword]


def env_of(stage: list[Instruction]) -> dict[str, str]:
    env: dict[str, str] = {}
    for args in args_of(stage, "ENV"):
        for token in shlex.split(args):
            key, _, value = token.partition("=")
            env[key] = value
    return env


def labels_of(stage: list[Instruction]) -> dict[str, str]:
    labels: dict[str, str] = {}
    for args in args_of(stage, "LABEL"):
        for token in shlex.split(args):
            key, _, value = token.partition("=")
            labels[key] = value
    return labels


def test_parser_joins_continuations_and_drops_comments() -> None:
    text = "# c\nFROM x AS a\nRUN one \\\n    two\n\nENV A=1 \\\n    B=2\n"
    assert instructions(text) == [("FROM", "x AS a"), ("RUN", "one  two"), ("ENV", "A=1  B=2")]


def test_base_image_is_an_argument_defaulting_to_python_slim(parsed: list[Instruction]) -> None:
    global_args = args_of(stages(parsed)[0], "ARG")
    assert "BASE_IMAGE=python:3.11-slim" in global_args
    froms = [args.split()[0] for key, args in parsed if key == "FROM"]
    assert froms == ["${BASE_IMAGE}", "${BASE_IMAGE}"]


def test_multi_stage_builder_installs_the_hash_locked_venv(parsed: list[Instruction]) -> None:
    builder, runtime = stages(parsed)[1:]
    assert builder[0][1].endswith(" AS builder")
    runs = " ".join(args_of(builder, "RUN"))
    assert "--require-hashes -r requirements.lock" in runs
    assert "install --no-cache-dir --no-deps ." in runs
    assert "-m compileall" in runs
    # The runtime takes the venv from the builder and installs nothing itself.
    assert args_of(runtime, "COPY") == ["--from=builder /opt/venv /opt/venv"]
    runtime_runs = " ".join(args_of(runtime, "RUN"))
    for installer in ("pip ", "apt-get", "apt ", "gcc", "make"):
        assert installer not in runtime_runs


def test_runs_as_numeric_unprivileged_user(parsed: list[Instruction]) -> None:
    runtime = final_stage(parsed)
    users = args_of(runtime, "USER")
    assert users == ["10001:10001"]
    # USER comes after every RUN of the final stage, so nothing runs as root at run time.
    keywords = [key for key, _ in runtime]
    assert keywords.index("USER") > max(i for i, key in enumerate(keywords) if key == "RUN")
    runs = " ".join(args_of(runtime, "RUN"))
    assert "--uid 10001" in runs
    assert "--gid 10001" in runs
    assert "chown 10001:10001 /var/lib/pleno" in runs


def test_runtime_environment(parsed: list[Instruction]) -> None:
    env = env_of(final_stage(parsed))
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["PYTHONUNBUFFERED"] == "1"
    assert env["PLENO_LOG_FORMAT"] == "json"
    assert env["PLENO_HOST"] == "0.0.0.0"  # noqa: S104 - a container listens on all interfaces
    assert env["PLENO_DATABASE_URL"] == "sqlite:////var/lib/pleno/pleno.db"
    assert env["PLENO_BUILD_COMMIT"] == "${COMMIT}"
    assert env["PLENO_BUILD_DATE"] == "${BUILD_DATE}"
    assert env["PATH"].startswith("/opt/venv/bin:")
    assert args_of(final_stage(parsed), "VOLUME") == ['["/var/lib/pleno"]']


def test_oci_labels_come_from_build_arguments(parsed: list[Instruction]) -> None:
    runtime = final_stage(parsed)
    declared = {args.partition("=")[0] for args in args_of(runtime, "ARG")}
    assert {"VERSION", "COMMIT", "BUILD_DATE"} <= declared
    labels = labels_of(runtime)
    assert labels["org.opencontainers.image.version"] == "${VERSION}"
    assert labels["org.opencontainers.image.revision"] == "${COMMIT}"
    assert labels["org.opencontainers.image.created"] == "${BUILD_DATE}"
    assert labels["org.opencontainers.image.title"] == "pleno"
    assert labels["org.opencontainers.image.licenses"] == "Apache-2.0"


def test_port_healthcheck_and_exec_form_entrypoint(parsed: list[Instruction]) -> None:
    runtime = final_stage(parsed)
    assert args_of(runtime, "EXPOSE") == ["8000"]
    (healthcheck,) = args_of(runtime, "HEALTHCHECK")
    options, _, command = healthcheck.partition(" CMD ")
    assert "--interval=" in options
    assert "--timeout=" in options
    probe = json.loads(command)
    assert probe[:2] == ["python", "-c"]
    assert "/health" in probe[2]
    # Exec form (JSON arrays): pleno is PID 1 and gets SIGTERM itself, not a shell.
    assert json.loads(args_of(runtime, "ENTRYPOINT")[0]) == ["pleno"]
    assert json.loads(args_of(runtime, "CMD")[0]) == ["serve"]


def test_no_hard_coded_interpreter_path(parsed: list[Instruction]) -> None:
    # python:3.11-slim has python in /usr/local/bin, Debian in /usr/bin: use the one on PATH.
    text = " ".join(args for _, args in parsed)
    assert not re.search(r"/usr(/local)?/bin/python", text)


def test_dockerignore_keeps_local_state_out_of_the_context() -> None:
    ignored = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    for entry in (".git", ".venv", ".venv-*", "var", "bench", "**/__pycache__", ".pytest_cache"):
        assert entry in ignored
    # What the Dockerfile copies must stay in the context.
    for needed in ("src", "pyproject.toml", "README.md", "requirements.lock"):
        assert needed not in ignored
