"""Learning-curve figures as in the paper: test win rate against env steps, one panel per map, one line per
method (mean over runs) with a shaded 95% confidence band, and the heuristic as a dashed line.

Figures are built on the Agg canvas directly (no pyplot, no screen, no global backend switch).
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import EngFormatter

from qmix.results.runs import Run, group_by_map_alg
from qmix.results.stats import curve_stats

# Fixed colours so a method looks the same in every panel and every figure.
ALG_COLOURS = {
    "qmix": "tab:blue",
    "vdn": "tab:orange",
    "iql": "tab:green",
    "qmix_ns": "tab:purple",
    "qmix_lin": "tab:brown",
    "vdn_s": "tab:pink",
}
SPARE_COLOURS = ("tab:cyan", "tab:olive", "tab:gray", "tab:red", "black", "gold")
HEURISTIC_STYLE = {"color": "black", "linestyle": "--", "linewidth": 1.2}
METRIC_LABELS = {"test_win_rate": "test win rate (%)", "test_return": "test return"}
FORMATS = ("png", "svg")
PANEL_SIZE = (4.8, 3.6)  # inches per panel
MAX_COLUMNS = 3


def plot_runs(
    runs: Sequence[Run],
    out_path_stem: str | Path,
    heuristic: dict[str, float] | None = None,
    title: str | None = None,
    extend: bool = False,
) -> list[Path]:
    """Plot the test win rate of `runs` and save `<stem>.png` and `<stem>.svg`; returns their paths.

    `heuristic` maps a map name to the heuristic's win rate in 0..1, drawn as a dashed line. Curves stop
    where the shortest run of a method stops, unless `extend` (see `qmix.results.stats`).
    """
    return plot_metric(runs, "test_win_rate", out_path_stem, heuristic=heuristic, title=title, extend=extend)


def plot_metric(
    runs: Sequence[Run],
    key: str,
    out_path_stem: str | Path,
    heuristic: dict[str, float] | None = None,
    title: str | None = None,
    extend: bool = False,
) -> list[Path]:
    """Plot any test metric (`test_win_rate`, `test_return`) and save it as PNG and SVG; returns the paths.

    `heuristic` holds the heuristic's value of the same metric per map (win rates in 0..1).
    """
    figure = build_figure(runs, key, heuristic=heuristic, title=title, extend=extend)
    return save_figure(figure, out_path_stem)


def build_figure(
    runs: Sequence[Run],
    key: str = "test_win_rate",
    heuristic: dict[str, float] | None = None,
    title: str | None = None,
    extend: bool = False,
) -> Figure:
    """The figure `plot_metric` saves: per panel one mean line and one CI band per method, plus the
    heuristic's dashed line where `heuristic` has the panel's map."""
    if not runs:
        raise ValueError("Nothing to plot: no runs given; pass run folders that hold metrics.jsonl.")
    groups = group_by_map_alg(runs)
    colours = alg_colours(alg for by_alg in groups.values() for alg in by_alg)
    figure, axes = _panel_grid(len(groups))
    for ax, (map_name, by_alg) in zip(axes, groups.items(), strict=True):
        heuristic_value = (heuristic or {}).get(map_name)
        _draw_panel(ax, map_name, by_alg, key, colours, heuristic_value, extend)
    if title:
        figure.suptitle(title)
    return figure


def alg_colours(algs) -> dict[str, str]:
    """The fixed colour of each known method; unknown methods take the spare colours in order of name."""
    colours = {}
    unknown = sorted(set(algs) - set(ALG_COLOURS))
    for index, alg in enumerate(unknown):
        colours[alg] = SPARE_COLOURS[index % len(SPARE_COLOURS)]
    return {**ALG_COLOURS, **colours}


def save_figure(figure: Figure, out_path_stem: str | Path) -> list[Path]:
    """Save as `<stem>.png` and `<stem>.svg`, each written whole or not at all."""
    stem = _strip_image_suffix(Path(out_path_stem))
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = []
    for image_format in FORMATS:
        path = Path(f"{stem}.{image_format}")
        _save_atomically(figure, path, image_format)
        paths.append(path)
    return paths


def _panel_grid(n_panels: int) -> tuple[Figure, list]:
    n_columns = min(MAX_COLUMNS, n_panels)
    n_rows = math.ceil(n_panels / n_columns)
    figure = Figure(figsize=(PANEL_SIZE[0] * n_columns, PANEL_SIZE[1] * n_rows), layout="constrained")
    FigureCanvasAgg(figure)
    axes = list(figure.subplots(n_rows, n_columns, squeeze=False).flat)
    for spare in axes[n_panels:]:
        figure.delaxes(spare)
    return figure, axes[:n_panels]


def _draw_panel(ax, map_name: str, by_alg: dict[str, list[Run]], key, colours, heuristic_value, extend):
    scale = _percent_scale(key)
    for alg, runs in by_alg.items():
        stats = curve_stats(runs, key, extend=extend)
        label = f"{alg} ({_runs_count_text(stats.n_runs)})"
        colour = colours[alg]
        marker = "o" if stats.env_steps.size == 1 else None  # a single test point is invisible as a line
        ax.plot(stats.env_steps, scale * stats.mean, color=colour, label=label, marker=marker)
        ax.fill_between(stats.env_steps, scale * stats.ci_low, scale * stats.ci_high, color=colour, alpha=0.2)
    if heuristic_value is not None:
        ax.axhline(scale * heuristic_value, label="heuristic", **HEURISTIC_STYLE)
    _style_panel(ax, map_name, key)


def _runs_count_text(n_runs) -> str:
    # With `extend`, unfinished runs drop out along the curve: show the range of runs averaged.
    fewest, most = int(min(n_runs)), int(max(n_runs))
    return f"n={most}" if fewest == most else f"n={fewest}–{most}"


def _style_panel(ax, map_name: str, key: str) -> None:
    ax.set_title(map_name)
    ax.set_xlabel("env steps")
    ax.set_ylabel(METRIC_LABELS.get(key, key))
    ax.xaxis.set_major_formatter(EngFormatter(sep=""))
    if key == "test_win_rate":
        ax.set_ylim(-2, 102)  # the CI band may leave 0..100 %; the axis stays on the possible range
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small", loc="best")


def _percent_scale(key: str) -> float:
    return 100.0 if key == "test_win_rate" else 1.0


def _strip_image_suffix(path: Path) -> Path:
    # Only a known image suffix is dropped: a stem like "3s5z_lr1.5e-4" keeps its dots.
    if path.suffix.lstrip(".").lower() in FORMATS:
        return path.with_suffix("")
    return path


def _save_atomically(figure: Figure, path: Path, image_format: str) -> None:
    # A temp file in the same folder, then a rename: readers never see a half-written image.
    handle, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    try:
        figure.savefig(temp_name, format=image_format, dpi=150)
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
