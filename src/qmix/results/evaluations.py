"""The report's table of greedy evaluations: what `qmix evaluate` measured on each finished run's final
parameters (hundreds of episodes per run, far tighter than the training-time tests of 32 episodes)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from qmix.results.stats import mean_ci
from qmix.run_folder import EVALUATION_FILE


@dataclass
class PairEvaluation:
    map: str
    alg: str
    episodes: list[int]  # per evaluated run
    win_rates: list[float]  # per evaluated run
    runs: int  # runs of the pair, evaluated or not


def _evaluated_runs(pair_folder: Path) -> list[dict]:
    """The per-run results of every final-parameters evaluation.json below a pair's folder."""
    runs = []
    for path in sorted(pair_folder.rglob(EVALUATION_FILE)):
        try:
            evaluation = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # a damaged file leaves that run out of the table, not the report out
        if evaluation.get("params") == "final":
            runs += evaluation.get("runs", [])
    return runs


def pair_evaluations(pair_folders: list[Path], runs_per_pair: int) -> list[PairEvaluation]:
    """One row per finished pair folder (named `<map>-<alg>`) with at least one evaluated run."""
    rows = []
    for folder in pair_folders:
        map_name, alg = folder.name.rsplit("-", 1)
        evaluated = _evaluated_runs(folder)
        if evaluated:
            rows.append(PairEvaluation(map_name, alg, [int(r["episodes"]) for r in evaluated],
                                       [float(r["win_rate"]) for r in evaluated], runs_per_pair))
    return rows


def evaluation_section(rows: list[PairEvaluation]) -> list[str]:
    if not rows:
        return []
    lines = ["## Greedy evaluations of the final parameters", "",
             "`qmix evaluate` on each run's final parameters: greedy agents, the same new test games for "
             "every run. Mean and 95% t interval over the runs evaluated; a run not evaluated is left out.", "",
             "| map | method | runs evaluated | episodes per run | greedy win % (95% CI) | per run |",
             "|---|---|---:|---:|---:|---|"]
    for row in rows:
        mean, half_width, _ = mean_ci(np.array(row.win_rates))
        episodes = "/".join(str(e) for e in sorted(set(row.episodes)))
        per_run = ", ".join(f"{100 * w:.1f}" for w in row.win_rates)
        lines.append(f"| {row.map} | {row.alg} | {len(row.win_rates)} of {row.runs} | {episodes} | "
                     f"{100 * mean:.1f} ± {100 * half_width:.1f} | {per_run} |")
    return [*lines, ""]
