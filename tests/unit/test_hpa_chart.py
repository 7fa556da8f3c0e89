"""The HPA demo's chart (loadtest/hpa_chart.py), rendered from clearly synthetic samples."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from loadtest import hpa_chart

HEADER = "elapsed_s,phase,current_replicas,desired_replicas,cpu_percent,ready_replicas,pods_cpu_m"
# SYNTHETIC: made up for this test, shaped like the timeline docs/loadtest.md predicts.
SYNTHETIC = [
    "0,baseline,2,2,3,2,6",
    "15,baseline,2,2,,2,",  # the HPA may show <unknown> CPU: an empty reading
    "30,load,2,4,160,2,320",
    "45,load,4,5,95,4,380",
    "60,load,5,5,80,5,400",
    "75,load,5,5,82,5,410",
    "90,cooldown,5,5,4,5,20",
    "390,cooldown,4,2,5,4,20",
    "450,cooldown,3,2,6,3,18",
    "510,cooldown,2,2,7,2,14",
]


def write(tmp_path: Path, rows: list[str], header: str = HEADER) -> Path:
    path = tmp_path / "samples.csv"
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def test_read_samples(tmp_path: Path) -> None:
    samples = hpa_chart.read_samples(write(tmp_path, SYNTHETIC))
    assert len(samples) == 10
    assert samples[1].cpu_percent is None
    assert samples[1].pods_cpu_m is None
    assert samples[3] == hpa_chart.Sample(45.0, "load", 4, 5, 95.0, 4, 380.0)


def test_phase_spans_in_minutes(tmp_path: Path) -> None:
    samples = hpa_chart.read_samples(write(tmp_path, SYNTHETIC))
    assert hpa_chart.phase_spans(samples, "load") == [(0.5, 1.5)]
    assert hpa_chart.phase_spans(samples, "cooldown") == [(1.5, 8.5)]
    assert hpa_chart.phase_spans(samples, "baseline") == [(0.0, 0.5)]


@pytest.mark.parametrize(
    ("header", "rows", "message"),
    [
        ("elapsed_s,replicas", ["0,2"], "expected columns"),
        (HEADER, ["0,warmup,2,2,3,2,6"], "unknown phase 'warmup'"),
        (HEADER, [], "no samples"),
    ],
)
def test_bad_csv_is_an_error(tmp_path: Path, header: str, rows: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        hpa_chart.read_samples(write(tmp_path, rows, header))


def test_main_renders_a_png(tmp_path: Path) -> None:
    chart = tmp_path / "out" / "hpa-demo.png"
    assert hpa_chart.main([str(write(tmp_path, SYNTHETIC)), str(chart)]) == 0
    data = chart.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 10_000


def test_render_draws_the_target_line_and_the_series(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415
    from matplotlib.figure import Figure  # noqa: PLC0415

    figures: list[Figure] = []
    monkeypatch.setattr(plt, "close", figures.append)  # keep the figure to inspect it
    hpa_chart.render(
        hpa_chart.read_samples(write(tmp_path, SYNTHETIC)), tmp_path / "c.png", target=70
    )
    (figure,) = figures
    replicas_axis, cpu_axis = figure.axes
    lines = {line.get_label(): line for line in [*replicas_axis.lines, *cpu_axis.lines]}

    def ydata(label: str) -> list[float]:
        return [float(v) for v in np.asarray(lines[label].get_ydata(), dtype=float)]

    assert ydata("target 70%") == [70, 70]
    assert ydata("replicas (HPA current)") == [2, 2, 2, 4, 5, 5, 5, 4, 3, 2]
    # The empty reading is skipped, not drawn as 0.
    assert ydata("CPU, % of request (HPA)") == [3, 160, 95, 80, 82, 4, 5, 6, 7]
    monkeypatch.undo()
    plt.close(figure)
