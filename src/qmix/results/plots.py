"""Learning-curve figures as in the paper: a test metric (the test win rate on SMAX) against env steps, one
panel per map, one line per method (mean over runs) with a shaded 95% confidence band (none for a single
run), and the heuristic as a dashed line. `write_learning_curve` draws one run folder's own curves (every
seed) into that folder, one panel per metric its environment declares.

Figures are built on the Agg canvas directly (no pyplot, no screen, no global backend switch).
"""

from __future__ import annotations

import io
import math
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import EngFormatter

from qmix.metric_text import is_rate, label
from qmix.results.runs import Run, group_by_map_alg, load_runs, logged_metrics
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
FORMATS = ("png", "svg")
PANEL_SIZE = (4.8, 3.6)  # inches per panel
MAX_COLUMNS = 3
DPI = 150
PNG_COLOURS = 128  # PNGs are saved as palette images: about a third of the size, no visible difference
LEARNING_CURVE_STEM = "learning_curve"  # <run folder>/learning_curve.png and .svg
LEARNING_CURVE_DPI = 100  # a run folder's own figure: small enough to keep beside its logs
LEARNING_CURVE_COLOURS = 64  # thin lines and no bands: fewer colours suffice


def plot_runs(
    runs: Sequence[Run],
    out_path_stem: str | Path,
    heuristic: dict[str, float] | None = None,
    title: str | None = None,
    extend: bool = False,
    metric: str = "test_win_rate",
) -> list[Path]:
    """Plot the test `metric` of `runs` and save `<stem>.png` and `<stem>.svg`; returns their paths.

    `heuristic` maps a map name to the heuristic's value of the metric (a win rate in 0..1), drawn as a
    dashed line. Curves stop where the shortest run of a method stops, unless `extend` (see `qmix.results.stats`).
    """
    return plot_metric(runs, metric, out_path_stem, heuristic=heuristic, title=title, extend=extend)


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


def save_figure(
    figure: Figure, out_path_stem: str | Path, dpi: int = DPI, png_colours: int | None = PNG_COLOURS
) -> list[Path]:
    """Save as `<stem>.png` and `<stem>.svg`, each written whole or not at all; the PNG holds a palette of
    `png_colours` colours (None: full colour)."""
    stem = _strip_image_suffix(Path(out_path_stem))
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = []
    for image_format in FORMATS:
        path = Path(f"{stem}.{image_format}")
        _save_atomically(figure, path, image_format, dpi, png_colours)
        paths.append(path)
    return paths


def write_learning_curve(run_dir: str | Path) -> list[Path]:
    """Draw each test metric a run folder logged of those its environment declares (the headline first)
    against env steps, one line per seed (and their mean with several seeds), into `<run_dir>/learning_curve.png` and `.svg`; returns the two paths.

    `run_dir` is a folder `qmix train` wrote: one run, or a `--seeds K` folder with its `seed_<k>/`
    sub-folders. Raises ValueError when it holds no test results yet.
    """
    run_dir = Path(run_dir)
    figure = build_learning_curve(load_runs([run_dir]), title=run_dir.name)
    return save_figure(figure, run_dir / LEARNING_CURVE_STEM, dpi=LEARNING_CURVE_DPI,
                       png_colours=LEARNING_CURVE_COLOURS)


def build_learning_curve(runs: Sequence[Run], title: str | None = None) -> Figure:
    """The figure `write_learning_curve` saves: a panel per declared metric the runs logged."""
    if not runs:
        raise ValueError("Nothing to plot: no runs given; pass a run folder that holds metrics.jsonl.")
    keys = learning_curve_metrics(runs)
    figure, axes = _panel_grid(len(keys))
    colours = [f"C{index % 10}" for index in range(len(runs))]
    for ax, key in zip(axes, keys, strict=True):
        scale = _percent_scale(key)
        several = len(runs) > 1
        for run, colour in zip(runs, colours, strict=True):
            steps, values = run.curve(key)
            label = f"seed {'?' if run.seed is None else run.seed}"
            ax.plot(steps, scale * values, color=colour, label=label, linewidth=0.8 if several else 1.2,
                    alpha=0.6 if several else 1.0, marker="o" if steps.size == 1 else None)
        if several:
            stats = curve_stats(runs, key)
            ax.plot(stats.env_steps, scale * stats.mean, color="black", linewidth=1.6,
                    label=f"mean (n={len(runs)})")
        algs, maps = {run.alg for run in runs}, {run.map for run in runs}
        _style_panel(ax, f"{'/'.join(sorted(algs))} on {'/'.join(sorted(maps))}", key)
    if title:
        figure.suptitle(title)
    return figure


def learning_curve_metrics(runs: Sequence[Run]) -> list[str]:
    """The logged test metrics the runs' environment declares, its headline first (by the map's registry
    entry); for a map unknown here, test_win_rate and test_return where logged."""
    from qmix.envs import declared_metrics
    from qmix.errors import ConfigError

    logged = logged_metrics(runs)
    try:
        declared = [declared_metrics(run.map) for run in runs]
    except ConfigError:
        return [key for key in ("test_win_rate", "test_return") if key in logged]
    names = [f"test_{d.headline}" for d in declared] + [f"test_{n}" for d in declared for n in d.names]
    return [key for key in dict.fromkeys(names) if key in logged]


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
        if max(stats.n_runs) > 1:  # one run has no interval: no band rather than a zero-width one
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
    ax.set_ylabel(f"test {label(key)}" + (" (%)" if is_rate(key) else ""))
    ax.xaxis.set_major_formatter(EngFormatter(sep=""))
    if is_rate(key):
        ax.set_ylim(-2, 102)  # the CI band may leave 0..100 %; the axis stays on the possible range
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small", loc="best")


def _percent_scale(key: str) -> float:
    return 100.0 if is_rate(key) else 1.0


def _strip_image_suffix(path: Path) -> Path:
    # Only a known image suffix is dropped: a stem like "3s5z_lr1.5e-4" keeps its dots.
    if path.suffix.lstrip(".").lower() in FORMATS:
        return path.with_suffix("")
    return path


def _save_atomically(
    figure: Figure, path: Path, image_format: str, dpi: int = DPI, png_colours: int | None = None
) -> None:
    # A temp file in the same folder, then a rename: readers never see a half-written image.
    handle, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    try:
        if image_format == "png" and png_colours:
            _save_palette_png(figure, temp_name, dpi, png_colours)
        else:
            figure.savefig(temp_name, format=image_format, dpi=dpi)
        os.chmod(temp_name, 0o644)  # mkstemp makes it private; a figure is for reading like the run's other files
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise


def _save_palette_png(figure: Figure, path: str, dpi: int, colours: int) -> None:
    from PIL import Image  # matplotlib's own dependency

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    buffer.seek(0)
    with Image.open(buffer) as image:
        image.convert("RGB").quantize(colors=colours).save(path, format="PNG", optimize=True)
