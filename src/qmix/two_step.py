"""The QMIX paper's first experiment (Rashid et al., 2018, section 5, Table 1): train on the two-step game,
read off the learned Q_tot tables."""

from __future__ import annotations

import time
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from qmix.algorithms.base import has_joint_action_values
from qmix.build import make_trainer
from qmix.config import build_config
from qmix.envs.two_step import STATE_NAMES
from qmix.learn.loop import Trainer, run_slice, seed_keys

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


@dataclass
class TwoStepResult:
    alg: str
    seed: int
    q_tot: np.ndarray | None  # [3 states, 2, 2]: rows agent 1's action, columns agent 2's; None: no joint values
    greedy_return: float


def q_tot_tables(trainer: Trainer, alg_state) -> np.ndarray | None:
    """The joint action-values in every state, from one run's saved parameters -> [3, A, A]; None for an
    algorithm that has none (e.g. one with only a policy)."""
    algorithm = trainer.algorithm
    if not has_joint_action_values(algorithm):
        return None
    name, tree = next(iter(algorithm.saved_parameters(alg_state).items()))  # what a finished run keeps first
    tables = []
    for cell in range(len(STATE_NAMES)):
        seen = trainer.env.observe(cell)
        tables.append(algorithm.joint_action_values(name, tree, seen.obs, seen.state, seen.avail_actions))
    return np.asarray(jnp.stack(tables))


def run_two_step(alg: str, seed: int = 0, num_seeds: int = 5, episodes: int = 5000) -> list[TwoStepResult]:
    """Train `num_seeds` runs side by side (seeds seed .. seed+num_seeds-1) with the paper's setup."""
    config = build_config(
        preset="two_step", alg=alg, seed=seed, num_seeds=num_seeds, env_steps=2 * episodes
    )
    trainer = make_trainer(config)
    runners = trainer.init_runs(seed_keys(seed, num_seeds))
    budget = np.full((num_seeds,), config.env_steps, np.int32)
    runners, _ = trainer.train_runs_until(runners, budget, budget)
    eval_keys = jax.vmap(lambda k: jax.random.fold_in(k, 7))(seed_keys(seed, num_seeds))
    results = trainer.evaluate_runs(runners.alg, eval_keys)[""]
    return [TwoStepResult(alg, seed + k, q_tot_tables(trainer, run_slice(runners.alg, k)),
                          float(results["test_return"][k])) for k in range(num_seeds)]


def format_matrix(m: np.ndarray) -> str:
    return "[" + ", ".join("[" + ", ".join(f"{v:.2f}" for v in row) + "]" for row in m) + "]"


def render(results_by_alg: dict[str, list[TwoStepResult]], seconds: float | None = None) -> None:
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


def main(algs: list[str], seed: int, num_seeds: int, episodes: int) -> dict[str, list[TwoStepResult]]:
    start = time.perf_counter()
    results = {alg: run_two_step(alg, seed, num_seeds, episodes) for alg in algs}
    render(results, time.perf_counter() - start)
    return results
