"""The CI skip guard, as a pytest plugin: with PLENO_REQUIRE_ALL=1 a skip is a failure.

CI sets the variable: a skipped test there means a dependency is missing. tests/conftest.py
imports these hooks; tests/unit/test_require_all.py loads this module as a plugin on its own.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

REQUIRE_ALL = os.environ.get("PLENO_REQUIRE_ALL") == "1"


def _forbid_skip(report: pytest.TestReport | pytest.CollectReport) -> None:
    if REQUIRE_ALL and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"skipped, but PLENO_REQUIRE_ALL=1 forbids skips: {reason}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    _forbid_skip(outcome.get_result())  # type: ignore[attr-defined]


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Iterator[None]:
    # A module-level pytest.skip() (a whole file needing a missing tool) is a collection
    # report, never a test report: without this it would slip past the guard above.
    outcome = yield
    _forbid_skip(outcome.get_result())  # type: ignore[attr-defined]
