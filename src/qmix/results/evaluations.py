"""The report's table of greedy evaluations: what `qmix evaluate` measured on each finished run's final
parameters (hundreds of episodes per run, far tighter than the training-time tests of 32 episodes)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from qmix.metric_text import is_rate, label
from qmix.results.stats import mean_ci
from qmix.run_folder import EVALUATION_FILE


@dataclass
class PairEvaluation:
    map: str
    alg: str
    episodes: list[int]  # per evaluated run
    values: list[float]  # per evaluated run, of the headline
    runs: int  # runs of the pair, evaluated or not
    headline: str = "win_rate"  # the metric the evaluations were summarised by

    @property
    def win_rates(self) -> list[float]:
        return self.values


def evaluation_headline(evaluation: dict) -> str:
    """The metric an evaluation.json is summarised by; files written before it was named hold SMAX win rates."""
    return evaluation.get("headline", "win_rate")


def run_value(run: dict, metric: str) -> float:
    """One evaluated run's value of `metric`: from its `metrics`, or an older file's own field (win_rate)."""
    return float(run.get("metrics", {}).get(metric, run.get(metric)))


def _evaluated_runs(pair_folder: Path) -> tuple[list[dict], str]:
    """The per-run results of every final-parameters evaluation.json below a pair's folder, with each run's
    headline value as "value"; and the headline."""
    runs, headline = [], "win_rate"
    for path in sorted(pair_folder.rglob(EVALUATION_FILE)):
        try:
            evaluation = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # a damaged file leaves that run out of the table, not the report out
        if evaluation.get("params") == "final":
            headline = evaluation_headline(evaluation)
            runs += [{**run, "value": run_value(run, headline)} for run in evaluation.get("runs", [])]
    return runs, headline


def pair_evaluations(pair_folders: list[Path], runs_per_pair: int) -> list[PairEvaluation]:
    """One row per finished pair folder (named `<map>-<alg>`) with at least one evaluated run."""
    rows = []
    for folder in pair_folders:
        map_name, alg = folder.name.rsplit("-", 1)
        evaluated, headline = _evaluated_runs(folder)
        if evaluated:
            rows.append(PairEvaluation(map_name, alg, [int(r["episodes"]) for r in evaluated],
                                       [r["value"] for r in evaluated], runs_per_pair, headline))
    return rows


def evaluation_section(rows: list[PairEvaluation]) -> list[str]:
    if not rows:
        return []
    lines = ["## Greedy evaluations of the final parameters", "",
             "`qmix evaluate` on each run's final parameters: greedy agents, the same new test games for "
             "every run. Mean and 95% t interval over the runs evaluated; a run not evaluated is left out.", "",
             f"| map | method | runs evaluated | episodes per run | greedy {_column(rows[0].headline)} (95% CI) "
             "| per run |", "|---|---|---:|---:|---:|---|"]
    for row in rows:
        scale = 100 if is_rate(row.headline) else 1
        mean, half_width, _ = mean_ci(scale * np.array(row.values))
        episodes = "/".join(str(e) for e in sorted(set(row.episodes)))
        per_run = ", ".join(f"{scale * w:.1f}" for w in row.values)
        lines.append(f"| {row.map} | {row.alg} | {len(row.values)} of {row.runs} | {episodes} | "
                     f"{mean:.1f} ± {half_width:.1f} | {per_run} |")
    return [*lines, ""]


def _column(headline: str) -> str:
    return "win %" if headline == "win_rate" else label(headline)
