"""Statistics over runs: mean curves with 95% confidence intervals, and the final-result table.

Curves. Runs are tested at slightly different env steps, so each run's curve is linearly interpolated onto
one shared grid of env steps before averaging. By default the grid spans only the range every run covers
(from the latest first test to the earliest last test), so every point averages the same runs. With
`extend=True` it spans all runs, each run counting only inside its own tested range (NaN outside), which
shows unfinished runs at the cost of a changing number of runs along the curve.

Intervals. The 95% CI is the Student-t interval of the mean over runs, mean +- t_{0.975, n-1} * sd / sqrt(n)
with the sample standard deviation (ddof=1); a single run gives a zero-width interval, which the figures
draw as no band and the table writes as "(n=1)" instead of an interval.

Table. A run's final win rate is the mean of its last `final_tests` test results (default 1: the last test, the
result at the end of training); its best win rate is the maximum over all its tests. The interquartile mean (IQM)
of the final win rates comes with a stratified bootstrap 95% CI (percentile method) from rliable; where
rliable cannot be imported or fails, scipy's bootstrap computes the same estimate (with one map per row, the
stratified bootstrap over runs is a plain bootstrap over runs).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.special

from qmix.metric_text import is_rate, label
from qmix.results.runs import Run, group_by_map_alg

log = logging.getLogger(__name__)

CONFIDENCE = 0.95
IQM_TRIM = 0.25  # the interquartile mean drops the lowest and highest quarter


@dataclass(frozen=True)
class CurveStats:
    """Mean over runs and its CI at each env step of a shared grid; `n_runs` counts the runs at each step."""

    env_steps: np.ndarray
    mean: np.ndarray
    ci_half_width: np.ndarray
    n_runs: np.ndarray

    @property
    def ci_low(self) -> np.ndarray:
        return self.mean - self.ci_half_width

    @property
    def ci_high(self) -> np.ndarray:
        return self.mean + self.ci_half_width


@dataclass(frozen=True)
class TableRow:
    """Final results of one method on one map in one test metric (win rates in 0..1); `*_ci` are CI half-widths."""

    map: str
    alg: str
    n_runs: int
    env_steps_min: int
    env_steps_max: int
    final_mean: float
    final_ci: float
    best_mean: float
    best_ci: float
    iqm: float | None = None
    iqm_low: float | None = None
    iqm_high: float | None = None
    metric: str = "test_win_rate"


def mean_ci(values: np.ndarray, confidence: float = CONFIDENCE) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean, CI half-width, number of runs) along axis 0 of [runs, ...] values, ignoring NaNs.

    The half-width is t_{(1+confidence)/2, n-1} * sd / sqrt(n); zero for one run, NaN for none.
    """
    values = np.asarray(values, dtype=np.float64)
    n = np.sum(np.isfinite(values), axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.nansum(values, axis=0) / n
        sd = np.sqrt(np.nansum((values - mean) ** 2, axis=0) / (n - 1))
        t_quantile = scipy.special.stdtrit(n - 1, (1 + confidence) / 2)  # Student's t quantile
        half_width = t_quantile * sd / np.sqrt(n)
    half_width = np.where(n == 1, 0.0, half_width)
    return mean, half_width, n


def common_grid(
    curves_steps: Sequence[np.ndarray], num_points: int | None = None, extend: bool = False
) -> np.ndarray:
    """Evenly spaced env steps shared by all curves (see the module notes for the two rules).

    `num_points` defaults to the largest number of tests of any run, about as dense as the tests.
    """
    firsts = [float(steps[0]) for steps in curves_steps]
    lasts = [float(steps[-1]) for steps in curves_steps]
    start, end = (min(firsts), max(lasts)) if extend else (max(firsts), min(lasts))
    if start > end:
        raise ValueError(
            f"The runs' test curves do not overlap (latest first test at {start:.0f} env steps, earliest "
            f"last test at {end:.0f}); use extend=True to plot each run over its own range."
        )
    if start == end:
        return np.array([start])
    num_points = num_points or max(len(steps) for steps in curves_steps)
    return np.linspace(start, end, max(num_points, 2))


def interpolate_onto(grid: np.ndarray, steps: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Linear interpolation of one run's curve at the grid steps; NaN outside the run's tested range."""
    return np.interp(grid, steps, values, left=np.nan, right=np.nan)


def curve_stats(
    runs: Sequence[Run],
    key: str = "test_win_rate",
    num_points: int | None = None,
    extend: bool = False,
    confidence: float = CONFIDENCE,
) -> CurveStats:
    """Mean and CI over `runs` of the test metric `key`, on a shared env-step grid."""
    curves = [run.curve(key) for run in runs]
    curves = [(steps, values) for steps, values in curves if steps.size]
    if not curves:
        raise ValueError(f"None of the {len(runs)} run(s) logged {key!r}; pick a metric the runs have.")
    grid = common_grid([steps for steps, _ in curves], num_points, extend)
    on_grid = np.stack([interpolate_onto(grid, steps, values) for steps, values in curves])
    mean, half_width, n = mean_ci(on_grid, confidence)
    return CurveStats(env_steps=grid, mean=mean, ci_half_width=half_width, n_runs=n)


def final_value(run: Run, final_tests: int = 1, key: str = "test_win_rate") -> float:
    """Mean of the run's last `final_tests` logged values of the test metric `key`."""
    return float(np.mean(run.curve(key)[1][-final_tests:]))


def best_value(run: Run, key: str = "test_win_rate") -> float:
    return float(np.max(run.curve(key)[1]))


def iqm_with_ci(
    scores: np.ndarray, bootstrap_reps: int = 5000, confidence: float = CONFIDENCE, seed: int = 0
) -> tuple[float, float, float]:
    """(IQM, CI low, CI high) of one score per run, by stratified bootstrap over runs."""
    import scipy.stats  # here, not at the top: ~0.5 s that an evaluation's mean_ci does not need

    scores = np.asarray(scores, dtype=np.float64)
    iqm = float(scipy.stats.trim_mean(scores, IQM_TRIM))
    if scores.size < 2 or np.all(scores == scores[0]):
        return iqm, iqm, iqm  # nothing to resample: the bootstrap distribution is a single value
    interval = _rliable_iqm_interval(scores, bootstrap_reps, confidence, seed)
    if interval is None:
        interval = _scipy_iqm_interval(scores, bootstrap_reps, confidence, seed)
    return iqm, *interval


def _import_rliable():
    """(library, metrics) modules of rliable, or None.

    Any exception counts as unavailable, not only ImportError: a broken dependency of rliable (e.g. arch 7
    beside pandas 3) fails with TypeError at import time.
    """
    try:
        from rliable import library, metrics
    except Exception:
        return None
    return library, metrics


def _rliable_iqm_interval(scores, bootstrap_reps, confidence, seed) -> tuple[float, float] | None:
    """rliable's stratified bootstrap CI of the IQM, or None where rliable is missing or broken."""
    rliable = _import_rliable()
    if rliable is None:
        return None
    library, metrics = rliable
    try:
        with warnings.catch_warnings():
            # arch 7 warns about the `random_state` argument that rliable passes on; nothing for users to do.
            warnings.filterwarnings("ignore", message="random_state is deprecated", category=FutureWarning)
            _, intervals = library.get_interval_estimates(
                {"scores": scores[:, None]},  # [runs, tasks=1]
                lambda score_matrix: np.array([metrics.aggregate_iqm(score_matrix)]),
                reps=bootstrap_reps,
                confidence_interval_size=confidence,
                random_state=np.random.RandomState(seed),
            )
    except TypeError as error:
        # rliable 1.2 passes `random_state` to arch's bootstrap, which arch 8 rejects with a TypeError.
        log.debug("rliable failed (%s); using scipy's bootstrap for the IQM interval.", error)
        return None
    low, high = intervals["scores"][:, 0]
    return float(low), float(high)


def _scipy_iqm_interval(scores, bootstrap_reps, confidence, seed) -> tuple[float, float]:
    import scipy.stats

    result = scipy.stats.bootstrap(
        (scores,),
        lambda sample, axis: scipy.stats.trim_mean(sample, IQM_TRIM, axis=axis),
        n_resamples=bootstrap_reps,
        confidence_level=confidence,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def aggregate_table(
    runs: Sequence[Run], final_tests: int = 1, bootstrap_reps: int = 5000, confidence: float = CONFIDENCE,
    key: str = "test_win_rate",
) -> list[TableRow]:
    """One row per (map, alg) of the test metric `key`, maps and algs in display order (the paper's first);
    runs that never logged `key` are left out."""
    runs = [run for run in runs if run.curve(key)[0].size]
    return [
        _table_row(map_name, alg, group, final_tests, bootstrap_reps, confidence, key)
        for map_name, by_alg in group_by_map_alg(runs).items()
        for alg, group in by_alg.items()
    ]


def _table_row(map_name, alg, runs, final_tests, bootstrap_reps, confidence, key) -> TableRow:
    finals = np.array([final_value(run, final_tests, key) for run in runs])
    bests = np.array([best_value(run, key) for run in runs])
    final_mean, final_ci, _ = mean_ci(finals, confidence)
    best_mean, best_ci, _ = mean_ci(bests, confidence)
    iqm, iqm_low, iqm_high = iqm_with_ci(finals, bootstrap_reps, confidence)
    last_steps = [int(run.env_steps[-1]) for run in runs]
    return TableRow(
        map=map_name,
        alg=alg,
        n_runs=len(runs),
        env_steps_min=min(last_steps),
        env_steps_max=max(last_steps),
        final_mean=float(final_mean),
        final_ci=float(final_ci),
        best_mean=float(best_mean),
        best_ci=float(best_ci),
        iqm=iqm,
        iqm_low=iqm_low,
        iqm_high=iqm_high,
        metric=key,
    )


def format_table_markdown(rows: Sequence[TableRow]) -> str:
    """A Markdown table of the rows, with their 95% CIs; win rates in %."""
    metric = rows[0].metric if rows else "test_win_rate"
    name = "win %" if is_rate(metric) else label(metric)
    header = (f"| map | method | runs | env steps | final test {name} (95% CI) | best test {name} (95% CI) "
              f"| IQM final {name} [95% CI] |")
    lines = [header, "|---|---|---:|---:|---:|---:|---:|"]
    lines += [_format_row(row) for row in rows]
    return "\n".join(lines) + "\n"


def _format_row(row: TableRow) -> str:
    cells = [
        row.map,
        row.alg,
        str(row.n_runs),
        _format_steps_range(row.env_steps_min, row.env_steps_max),
        _format_mean_ci(row.final_mean, row.final_ci, row.n_runs, row.metric),
        _format_mean_ci(row.best_mean, row.best_ci, row.n_runs, row.metric),
        _format_iqm(row),
    ]
    return "| " + " | ".join(cells) + " |"


def _number(value: float, metric: str) -> str:
    """A rate in % to one decimal (without the sign: the header says %), anything else to two decimals."""
    return f"{100 * value:.1f}" if is_rate(metric) else f"{value:.2f}"


def _format_mean_ci(mean: float, half_width: float, n_runs: int, metric: str = "test_win_rate") -> str:
    if n_runs == 1:  # one run has no interval over runs; "± 0.0" would claim one
        return f"{_number(mean, metric)} (n=1)"
    return f"{_number(mean, metric)} ± {_number(half_width, metric)}"


def _format_iqm(row: TableRow) -> str:
    if row.iqm is None or row.iqm_low is None or row.iqm_high is None:
        return "–"
    if row.n_runs == 1:
        return f"{_number(row.iqm, row.metric)} (n=1)"
    return f"{_number(row.iqm, row.metric)} [{_number(row.iqm_low, row.metric)}, {_number(row.iqm_high, row.metric)}]"


def _format_steps_range(low: int, high: int) -> str:
    low_text, high_text = format_env_steps(low), format_env_steps(high)
    return low_text if low_text == high_text else f"{low_text}–{high_text}"


def format_env_steps(steps: float) -> str:
    """2050000 -> '2.05M', 50000 -> '50k'."""
    for divisor, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(steps) >= divisor:
            return f"{steps / divisor:.3g}{suffix}"
    return f"{steps:.0f}"
