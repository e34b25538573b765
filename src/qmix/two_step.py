"""The QMIX paper's first experiment (Rashid et al., 2018, section 5, Table 1): train on the two-step game,
read off the learned Q_tot tables."""

from __future__ import annotations

import time

import numpy as np

from qmix.envs.two_step import STATE_NAMES
from qmix.games import GameResult, format_matrix, train_game

# The paper's learned Q_tot, [state, agent 1's action, agent 2's action] (Table 1).
PAPER_Q_TOT = {
    "vdn": np.array([
        [[6.94, 6.94], [6.35, 6.36]],
        [[6.99, 7.02], [6.99, 7.02]],
        [[-1.87, 2.31], [2.33, 6.51]],
    ]),
    "qmix": np.array([
        [[6.93, 6.93], [7.92, 7.92]],
        [[7.00, 7.00], [7.00, 7.00]],
        [[0.00, 1.00], [1.00, 8.00]],
    ]),
}
PAPER_GREEDY_RETURN = {"vdn": 7.0, "qmix": 8.0}


def run_two_step(alg: str, seed: int = 0, num_seeds: int = 5, episodes: int = 5000) -> list[GameResult]:
    """Train `num_seeds` runs side by side (seeds seed .. seed+num_seeds-1) with the paper's setup; each
    result's q_tot is [3 states, 2, 2]."""
    return train_game("two_step", alg, seed, num_seeds, 2 * episodes, len(STATE_NAMES))


def render(results_by_alg: dict[str, list[GameResult]], seconds: float | None = None) -> None:
    """Print the paper's layout: one row per seed, a matrix per state, the paper's values beside."""
    from rich.console import Console
    from rich.table import Table

    console = Console(width=max(Console().width, 130))
    for alg, results in results_by_alg.items():
        table = Table(title=f"two-step game, {alg}: learned Q_tot (rows: agent 1's action A/B, columns: agent 2's)")
        table.add_column("run")
        for name in STATE_NAMES:
            table.add_column(name, no_wrap=True)
        table.add_column("greedy return", justify="right", no_wrap=True)
        for r in results:
            tables = [format_matrix(m) for m in r.q_tot] if r.q_tot is not None else ["no joint values"] * 3
            table.add_row(f"seed {r.seed}", *tables, f"{r.greedy_return:g}")
        if alg in PAPER_Q_TOT:
            table.add_row(
                "[italic]paper[/italic]",
                *(format_matrix(m) for m in PAPER_Q_TOT[alg]),
                f"{PAPER_GREEDY_RETURN[alg]:g}",
                style="dim",
            )
        console.print(table)
    if seconds is not None:
        console.print(f"trained {sum(len(r) for r in results_by_alg.values())} runs in {seconds:.1f} s")


def main(algs: list[str], seed: int, num_seeds: int, episodes: int) -> dict[str, list[GameResult]]:
    start = time.perf_counter()
    results = {alg: run_two_step(alg, seed, num_seeds, episodes) for alg in algs}
    render(results, time.perf_counter() - start)
    return results
