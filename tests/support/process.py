"""A child process whose output goes to a file, for tests that start real servers."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Mapping
from pathlib import Path


class LoggedProcess:
    """Starts `argv` with stdout and stderr captured in `log_path`, and stops it for sure."""

    def __init__(
        self,
        argv: list[str],
        log_path: Path,
        *,
        env: Mapping[str, str] | None = None,
        stop_signal: signal.Signals = signal.SIGTERM,
    ) -> None:
        self.log_path = log_path
        self._stop_signal = stop_signal
        self._log = log_path.open("wb")
        self.process = subprocess.Popen(argv, env=env, stdout=self._log, stderr=subprocess.STDOUT)

    @property
    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        """The stop signal, then SIGKILL after 10 s; the log file is closed either way."""
        if self.process.poll() is None:
            self.process.send_signal(self._stop_signal)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
