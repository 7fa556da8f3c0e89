"""How long scripts/hpa-demo.sh keeps the load phase open: the in-cluster run time, plus a margin.

The run time is set in one place, LOCUST_RUN_TIME in loadtest/kustomization.yaml (the
`loadtest-settings` ConfigMap the Job reads). The demo reads it from there instead of repeating
the number, and adds START_MARGIN_SECONDS for the pod to be scheduled, pull and start Locust.

Usage: python -m loadtest.run_time [KUSTOMIZATION]   (prints whole seconds)
"""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from pathlib import Path

import yaml

KUSTOMIZATION = Path(__file__).resolve().with_name("kustomization.yaml")
SETTINGS = "loadtest-settings"
START_MARGIN_SECONDS = 30
_UNITS = {"h": 3600, "m": 60, "s": 1}


def parse_run_time(text: str) -> int:
    """Locust's --run-time syntax: "300", "300s", "5m", "1h30m", "1h2m3s"; in seconds."""
    value = text.strip()
    if value.isdigit():
        return int(value)
    match = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?", value)
    if not value or match is None:
        raise ValueError(f"not a Locust run time: {text!r}")
    hours, minutes, seconds = (int(group or 0) for group in match.groups())
    return hours * _UNITS["h"] + minutes * _UNITS["m"] + seconds


def configured_run_time(kustomization: Path = KUSTOMIZATION) -> str:
    """LOCUST_RUN_TIME from the `loadtest-settings` configMapGenerator's literals."""
    document = yaml.safe_load(kustomization.read_text())
    for generator in document.get("configMapGenerator", []):
        if generator.get("name") != SETTINGS:
            continue
        for literal in generator.get("literals", []):
            key, _, value = str(literal).partition("=")
            if key == "LOCUST_RUN_TIME":
                return value
    raise ValueError(f"{kustomization}: no LOCUST_RUN_TIME literal in {SETTINGS}")


def load_seconds(kustomization: Path = KUSTOMIZATION) -> int:
    return parse_run_time(configured_run_time(kustomization)) + START_MARGIN_SECONDS


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    path = Path(args[0]) if args else KUSTOMIZATION
    sys.stdout.write(f"{load_seconds(path)}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
