"""Render scripts/hpa-demo.sh's samples: replicas and CPU % over time, with the HPA target line.

Usage: python -m loadtest.hpa_chart SAMPLES.csv CHART.png [--target 70] [--min 2] [--max 5]

The CSV has one row per sample (every 15 s), written by the demo script:
    elapsed_s,phase,current_replicas,desired_replicas,cpu_percent,ready_replicas,pods_cpu_m
`phase` is baseline, load or cooldown. `cpu_percent` is the HPA's own reading (average
utilization of the CPU request) and may be empty while the HPA shows <unknown>.
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

COLUMNS = (
    "elapsed_s",
    "phase",
    "current_replicas",
    "desired_replicas",
    "cpu_percent",
    "ready_replicas",
    "pods_cpu_m",
)
PHASES = ("baseline", "load", "cooldown")


@dataclass(frozen=True)
class Sample:
    elapsed_s: float
    phase: str
    current_replicas: int
    desired_replicas: int
    cpu_percent: float | None
    ready_replicas: int
    pods_cpu_m: float | None


def _number(text: str) -> float | None:
    text = text.strip()
    return float(text) if text else None


def read_samples(path: Path) -> list[Sample]:
    """Parse the demo CSV; a wrong header or phase is an error, an empty reading is None."""
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        if tuple(reader.fieldnames or ()) != COLUMNS:
            raise ValueError(f"{path}: expected columns {','.join(COLUMNS)}")
        samples = []
        for line, row in enumerate(reader, start=2):
            if row["phase"] not in PHASES:
                raise ValueError(f"{path}:{line}: unknown phase {row['phase']!r}")
            samples.append(
                Sample(
                    elapsed_s=float(row["elapsed_s"]),
                    phase=row["phase"],
                    current_replicas=int(row["current_replicas"] or 0),
                    desired_replicas=int(row["desired_replicas"] or 0),
                    cpu_percent=_number(row["cpu_percent"]),
                    ready_replicas=int(row["ready_replicas"] or 0),
                    pods_cpu_m=_number(row["pods_cpu_m"]),
                )
            )
    if not samples:
        raise ValueError(f"{path}: no samples")
    return samples


def phase_spans(samples: Sequence[Sample], phase: str) -> list[tuple[float, float]]:
    """[start, end) minute spans where `phase` holds, for shading."""
    spans: list[tuple[float, float]] = []
    start: float | None = None
    for sample in samples:
        if sample.phase == phase and start is None:
            start = sample.elapsed_s
        if sample.phase != phase and start is not None:
            spans.append((start / 60, sample.elapsed_s / 60))
            start = None
    if start is not None:
        spans.append((start / 60, samples[-1].elapsed_s / 60))
    return spans


def render(
    samples: Sequence[Sample],
    out: Path,
    *,
    target: float = 70.0,
    min_replicas: int = 2,
    max_replicas: int = 5,
    title: str = "Pleno HPA under the in-cluster Locust load",
) -> None:
    import matplotlib  # noqa: PLC0415 - heavy, and only rendering needs it

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    minutes = [s.elapsed_s / 60 for s in samples]
    fig, replicas_axis = plt.subplots(figsize=(10, 4.8))
    for start, end in phase_spans(samples, "load"):
        replicas_axis.axvspan(start, end, color="tab:red", alpha=0.08, label="load running")
    replicas_axis.step(
        minutes,
        [s.current_replicas for s in samples],
        where="post",
        color="tab:blue",
        lw=2,
        label="replicas (HPA current)",
    )
    replicas_axis.step(
        minutes,
        [s.ready_replicas for s in samples],
        where="post",
        color="tab:cyan",
        ls="--",
        label="ready replicas",
    )
    replicas_axis.axhline(min_replicas, color="tab:blue", ls=":", lw=1)
    replicas_axis.axhline(max_replicas, color="tab:blue", ls=":", lw=1)
    replicas_axis.set_ylim(0, max_replicas + 1)
    replicas_axis.set_xlabel("minutes since the first sample")
    replicas_axis.set_ylabel(f"replicas (min {min_replicas}, max {max_replicas})")

    cpu_axis = replicas_axis.twinx()
    known = [
        (m, s.cpu_percent)
        for m, s in zip(minutes, samples, strict=True)
        if s.cpu_percent is not None
    ]
    cpu_axis.plot(
        [m for m, _ in known],
        [c for _, c in known],
        color="tab:orange",
        marker=".",
        label="CPU, % of request (HPA)",
    )
    cpu_axis.axhline(target, color="tab:red", ls="--", lw=1.5, label=f"target {target:.0f}%")
    highest = max([target, *(c for _, c in known if c is not None)])
    cpu_axis.set_ylim(0, highest * 1.15)
    cpu_axis.set_ylabel("CPU utilization, % of request")

    handles, labels = replicas_axis.get_legend_handles_labels()
    more_handles, more_labels = cpu_axis.get_legend_handles_labels()
    unique = dict(zip(labels + more_labels, handles + more_handles, strict=True))
    replicas_axis.legend(unique.values(), unique.keys(), loc="upper right", fontsize=8)
    replicas_axis.set_title(title)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hpa_chart", description=__doc__.split("\n")[0])
    parser.add_argument("samples", type=Path)
    parser.add_argument("chart", type=Path)
    parser.add_argument("--target", type=float, default=70.0)
    parser.add_argument("--min", dest="min_replicas", type=int, default=2)
    parser.add_argument("--max", dest="max_replicas", type=int, default=5)
    args = parser.parse_args(argv)
    render(
        read_samples(args.samples),
        args.chart,
        target=args.target,
        min_replicas=args.min_replicas,
        max_replicas=args.max_replicas,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
