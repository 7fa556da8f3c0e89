"""`make load`: Locust, headless, against LOAD_HOST or a local Pleno started for the run.

Usage: python -m loadtest.run [--host URL] [--users N] [--spawn-rate R] [--run-time T] [--out DIR]
Every option defaults to its LOAD_* environment variable (the Makefile's knobs). The pass/fail
thresholds LOAD_MAX_ERROR_RATIO and LOAD_MAX_P95_MS are read by locustfile.py itself, so the
in-cluster Job applies the same check. The exit code is Locust's: non-zero on a breach.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from loadtest.local import ROOT, LocalPleno, locust_command, run_locust


def say(message: str) -> None:
    sys.stdout.write(message + "\n")
    sys.stdout.flush()


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    env = os.environ
    parser = argparse.ArgumentParser(prog="make load", description=__doc__.split("\n")[0])
    parser.add_argument("--host", default=env.get("LOAD_HOST", ""), help="empty: start one")
    parser.add_argument("--users", type=int, default=int(env.get("LOAD_USERS", "10")))
    parser.add_argument("--spawn-rate", type=float, default=float(env.get("LOAD_SPAWN_RATE", "2")))
    parser.add_argument("--run-time", default=env.get("LOAD_RUN_TIME", "30s"))
    parser.add_argument(
        "--out", type=Path, default=Path(env.get("LOAD_OUT", str(ROOT / "var" / "loadtest")))
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)

    def load(host: str) -> int:
        command = locust_command(
            host,
            args.users,
            args.spawn_rate,
            args.run_time,
            csv_prefix=out / "pleno",
            html=out / "report.html",
        )
        code = run_locust(command)
        say(f"\nload: report {out / 'report.html'}, CSV {out}/pleno_*.csv, exit code {code}")
        return code

    if args.host:
        return load(args.host)
    with LocalPleno(out / "server") as server:
        say(f"load: started pleno serve on {server.url} (log: {server.log_path})")
        return load(server.url)


if __name__ == "__main__":
    sys.exit(main())
