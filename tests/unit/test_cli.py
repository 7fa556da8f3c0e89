"""The `pleno` console script and `python -m pleno` are the same CLI."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from pleno import __version__
from pleno.cli import main


def run(args: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    clean = {key: value for key, value in os.environ.items() if not key.startswith("PLENO_")}
    return subprocess.run(
        args, env={**clean, **env}, capture_output=True, text=True, timeout=60, check=False
    )


def pleno_script() -> str:
    script = shutil.which("pleno", path=str(Path(sys.executable).parent))
    assert script, "the console script is installed next to the interpreter"
    return script


@pytest.mark.parametrize("entry", ["script", "module"])
def test_version_from_both_entry_points(entry: str) -> None:
    command = [pleno_script()] if entry == "script" else [sys.executable, "-m", "pleno"]
    result = run([*command, "version"], PLENO_BUILD_COMMIT="deadbee")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "version": __version__,
        "commit": "deadbee",
        "build_date": "unknown",
    }


@pytest.mark.parametrize("entry", ["script", "module"])
def test_both_entry_points_list_the_same_subcommands(entry: str) -> None:
    command = [pleno_script()] if entry == "script" else [sys.executable, "-m", "pleno"]
    result = run([*command, "--help"])
    assert result.returncode == 0
    for subcommand in ("serve", "migrate", "version"):
        assert subcommand in result.stdout


def test_invalid_setting_exits_nonzero_with_one_line() -> None:
    result = run([sys.executable, "-m", "pleno", "serve"], PLENO_PORT="abc")
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "PLENO_PORT" in lines[0]
    assert "Traceback" not in result.stderr


def test_migrate_creates_the_schema(tmp_path: Path) -> None:
    database = tmp_path / "nested" / "pleno.db"
    result = run(
        [sys.executable, "-m", "pleno", "migrate"], PLENO_DATABASE_URL=f"sqlite:///{database}"
    )
    assert result.returncode == 0, result.stdout + result.stderr
    with sqlite3.connect(database) as connection:
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master")}
        revision = connection.execute("SELECT version_num FROM alembic_version").fetchone()
    assert "items" in tables
    assert revision == ("0001",)
    again = run(
        [sys.executable, "-m", "pleno", "migrate"], PLENO_DATABASE_URL=f"sqlite:///{database}"
    )
    assert again.returncode == 0, "migrating twice is a no-op"


def test_migrate_reports_an_unreachable_database() -> None:
    result = run(
        [sys.executable, "-m", "pleno", "migrate"],
        PLENO_DATABASE_URL="postgresql://pleno:secret@127.0.0.1:1/pleno",
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("pleno: database unavailable")
    assert "secret" not in line


def test_main_rejects_bad_settings_in_process(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PLENO_CHAOS_ERROR_RATE", "2")
    assert main(["version"]) == 2
    assert "PLENO_CHAOS_ERROR_RATE" in capsys.readouterr().err
