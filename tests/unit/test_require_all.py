"""The CI skip guard: with PLENO_REQUIRE_ALL=1, a skipped test or test file fails the run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# Each case: the test file, pytest's exit code without the flag, and with it.
SKIPS = {
    "a skipped test": (
        "import pytest\n\ndef test_needs_a_tool():\n    pytest.skip('no tool')\n",
        pytest.ExitCode.OK,
        pytest.ExitCode.TESTS_FAILED,
    ),
    # A whole file that skips at import is a collection report, not a test report.
    "a skipped file": (
        "import pytest\n\npytest.skip('no tool', allow_module_level=True)\n",
        pytest.ExitCode.NO_TESTS_COLLECTED,
        pytest.ExitCode.INTERRUPTED,  # a collection error stops the run
    ),
}


def _run_pytest(test_file: Path, require_all: bool) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if key != "PLENO_REQUIRE_ALL"}
    if require_all:
        env["PLENO_REQUIRE_ALL"] = "1"
    env["PYTHONPATH"] = str(REPO)
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "tests.support.require_all",
            "-p",
            "no:cacheprovider",
            "--rootdir",
            str(test_file.parent),
            str(test_file),
        ],
        cwd=test_file.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("case", SKIPS)
def test_a_skip_fails_the_run_only_when_all_tests_are_required(tmp_path: Path, case: str) -> None:
    source, exit_allowed, exit_required = SKIPS[case]
    test_file = tmp_path / "test_skipping.py"
    test_file.write_text(source)

    allowed = _run_pytest(test_file, require_all=False)
    assert allowed.returncode == exit_allowed, allowed.stdout
    assert "1 skipped" in allowed.stdout.splitlines()[-1]

    required = _run_pytest(test_file, require_all=True)
    assert required.returncode == exit_required, required.stdout
    assert "skipped, but PLENO_REQUIRE_ALL=1 forbids skips: Skipped: no tool" in required.stdout
    assert "skipped" not in required.stdout.splitlines()[-1]
