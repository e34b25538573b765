"""Which test metric a set of runs is shown by: the headline their environments declare, or one asked for."""

from __future__ import annotations

from collections.abc import Sequence

from qmix.errors import ConfigError
from qmix.results.runs import Run, logged_metrics


def declared_headline(runs: Sequence[Run]) -> str | None:
    """test_<headline> of the runs' environment, read from their config's map through the environment
    registry; None when the maps are unknown here or disagree."""
    from qmix.envs import declared_metrics

    headlines = set()
    for map_name in {run.map for run in runs}:
        try:
            headlines.add(f"test_{declared_metrics(map_name).headline}")
        except ConfigError:  # a map this installation does not know (e.g. a plug-in's, or "unknown")
            return None
    return headlines.pop() if len(headlines) == 1 else None


def plotted_metric(runs: Sequence[Run], asked: str | None = None) -> str:
    """The test metric to show: `asked` (test_ may be left out), else the declared headline, else
    test_win_rate if logged, else test_return. A ConfigError names the metrics logged if it is not there."""
    logged = logged_metrics(runs)
    if asked is not None:
        metric = asked if asked.startswith("test_") else f"test_{asked}"
        if metric not in logged:
            raise ConfigError(f"no run logged the test metric '{asked}'; the runs logged: {', '.join(logged)}; "
                              "pick one of those with --metric")
        return metric
    headline = declared_headline(runs)
    if headline in logged:
        return headline
    return "test_win_rate" if "test_win_rate" in logged else "test_return"


def metric_groups(runs: Sequence[Run], asked: str | None = None) -> dict[str, list[Run]]:
    """The runs by the test metric each is shown by: with `asked`, that one (for the runs that logged it);
    otherwise each map's own (`plotted_metric` of its runs), so that maps with and without a win, e.g. in
    one sweep, each get their headline."""
    if asked is not None:
        metric = plotted_metric(runs, asked)
        return {metric: [run for run in runs if metric in run.tests]}
    groups: dict[str, list[Run]] = {}
    for map_name in dict.fromkeys(run.map for run in runs):
        map_runs = [run for run in runs if run.map == map_name]
        groups.setdefault(plotted_metric(map_runs), []).extend(map_runs)
    return groups
