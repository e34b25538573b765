"""`qmix matrix-game`: the one-step game of Weighted QMIX (Rashid et al., NeurIPS 2020, section 6.1) that
QMIX's monotonic mixing cannot solve. Per algorithm and seed: the learned joint-value table, the greedy
joint action and its return."""

from __future__ import annotations

import time

import numpy as np

from qmix.envs.matrix_game import ACTION_NAMES, PAYOFF
from qmix.games import GameResult, format_matrix, train_game

OPTIMUM = 8.0  # PAYOFF at (A, A)


def run_matrix_game(alg: str, seed: int = 0, num_seeds: int = 5, episodes: int = 5000) -> list[GameResult]:
    """Train `num_seeds` runs side by side with uniform exploration; each result's q_tot is [1, 3, 3]."""
    return train_game("matrix_game", alg, seed, num_seeds, episodes, 1)


def finds_the_optimum(result: GameResult, tolerance: float = 0.5) -> bool:
    """The greedy joint action is (A, A) and, where there is a table, its value is within `tolerance` of 8."""
    if result.greedy_actions[0] != (0, 0):
        return False
    return result.q_tot is None or abs(float(result.q_tot[0, 0, 0]) - OPTIMUM) <= tolerance


def joint_action_name(actions: tuple[int, ...]) -> str:
    return "(" + ", ".join(ACTION_NAMES[a] for a in actions) + ")"


def render(results_by_alg: dict[str, list[GameResult]], seconds: float | None = None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=max(Console().width, 130))
    console.print(f"payoff (rows: agent 1's action A/B/C, columns: agent 2's): {format_matrix(np.array(PAYOFF))}")
    for alg, results in results_by_alg.items():
        table = Table(title=f"matrix game, {alg}: learned joint values (rows: agent 1's action A/B/C, columns: agent 2's)")
        for column in ("run", "joint values", "greedy joint action", "greedy return", "optimum"):
            table.add_column(column, no_wrap=True)
        for r in results:
            values = format_matrix(r.q_tot[0]) if r.q_tot is not None else "no joint values"
            table.add_row(f"seed {r.seed}", values, joint_action_name(r.greedy_actions[0]), f"{r.greedy_return:g}",
                          "yes" if finds_the_optimum(r) else "no")
        console.print(table)
        console.print(f"{alg}: the optimum (A, A) with its value within 0.5 of 8 in "
                      f"{sum(map(finds_the_optimum, results))} of {len(results)} seeds")
    if seconds is not None:
        console.print(f"trained {sum(len(r) for r in results_by_alg.values())} runs in {seconds:.1f} s")


def main(algs: list[str], seed: int, num_seeds: int, episodes: int) -> dict[str, list[GameResult]]:
    start = time.perf_counter()
    results = {alg: run_matrix_game(alg, seed, num_seeds, episodes) for alg in algs}
    render(results, time.perf_counter() - start)
    return results
