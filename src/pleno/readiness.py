"""Readiness state that is not the database: draining after SIGTERM and the operator's switch."""

from __future__ import annotations


class Readiness:
    def __init__(self) -> None:
        self.draining = False  # set once on the first shutdown signal; never cleared
        self.disabled = False  # toggled by POST /ready/disable and /ready/enable

    def start_draining(self) -> None:
        self.draining = True
