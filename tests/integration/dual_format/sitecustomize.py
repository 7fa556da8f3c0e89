"""Imported at start-up by the `pleno serve` children of test_grok_real_output.py (PYTHONPATH).

Besides the format that PLENO_LOG_FORMAT puts on stdout, it writes every record a second time, in
the text format, to the file named by PLENO_TEST_TEXT_LOG. Both lines come from the same
LogRecord, so one request's latency, status and ids can be compared between the two formats
exactly; two separate servers would measure two different latencies.
"""

from __future__ import annotations

import logging
import os

from pleno.observability import logging as pleno_logging
from pleno.settings import Settings

_TEXT_LOG = os.environ.get("PLENO_TEST_TEXT_LOG")
_configure = pleno_logging.configure_logging


def _configure_with_text_copy(settings: Settings, service_version: str) -> None:
    _configure(settings, service_version)
    if _TEXT_LOG:
        handler = logging.FileHandler(_TEXT_LOG, encoding="utf-8")
        handler.setFormatter(pleno_logging.TextFormatter())
        logging.getLogger().addHandler(handler)


# The CLI imports configure_logging when `serve` runs, after this module, so it gets this one.
pleno_logging.configure_logging = _configure_with_text_copy
