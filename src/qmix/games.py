"""Matrix games read through the algorithm protocol: train seeds side by side on a game's preset, then read
each run's joint action-values (the optional `joint_action_values` hook), its greedy joint action and its
greedy return. `qmix two-step` and `qmix matrix-game` print these."""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from qmix.algorithms.base import has_joint_action_values
from qmix.build import make_trainer
from qmix.config import build_config
from qmix.learn.loop import Trainer, run_slice, seed_keys


@dataclass
class GameResult:
    alg: str
    seed: int
    q_tot: np.ndarray | None  # [situations, A, A]: rows agent 1's action, columns agent 2's; None: no joint values
    greedy_actions: list[tuple[int, ...]]  # per situation, the joint action the greedy policy plays there
    greedy_return: float


def first_saved(trainer: Trainer, alg_state):
    """What a finished run keeps first (its main parameters): (name, pytree)."""
    return next(iter(trainer.algorithm.saved_parameters(alg_state).items()))


def joint_value_tables(trainer: Trainer, alg_state, situations: int) -> np.ndarray | None:
    """The joint action-values in each situation the game's `observe(i)` shows, from one run's saved
    parameters -> [situations, A, ..., A]; None for an algorithm that has none (e.g. one with only a policy)."""
    algorithm = trainer.algorithm
    if not has_joint_action_values(algorithm):
        return None
    name, tree = first_saved(trainer, alg_state)
    tables = []
    for i in range(situations):
        seen = trainer.env.observe(i)
        tables.append(algorithm.joint_action_values(name, tree, seen.obs, seen.state, seen.avail_actions))
    return np.asarray(jnp.stack(tables))


def greedy_joint_actions(trainer: Trainer, alg_state, situations: int) -> list[tuple[int, ...]]:
    """The joint action the run's greedy policy plays in each situation, as at the start of an episode."""
    algorithm = trainer.algorithm
    policy = algorithm.policy_from_saved(*first_saved(trainer, alg_state))
    joint = []
    for i in range(situations):
        seen = trainer.env.observe(i)
        _, actions = algorithm.act(policy, algorithm.initial_actor_state(1), jax.random.PRNGKey(0),
                                   seen.obs[None], seen.avail_actions[None])
        joint.append(tuple(int(a) for a in np.asarray(actions[0])))
    return joint


def train_game(preset: str, alg: str, seed: int, num_seeds: int, env_steps: int, situations: int) -> list[GameResult]:
    """Train `num_seeds` runs side by side (seeds seed .. seed+num_seeds-1) with a game's preset."""
    config = build_config(preset=preset, alg=alg, seed=seed, num_seeds=num_seeds, env_steps=env_steps)
    trainer = make_trainer(config)
    runners = trainer.init_runs(seed_keys(seed, num_seeds))
    budget = np.full((num_seeds,), config.env_steps, np.int32)
    runners, _ = trainer.train_runs_until(runners, budget, budget)
    eval_keys = jax.vmap(lambda k: jax.random.fold_in(k, 7))(seed_keys(seed, num_seeds))
    results = trainer.evaluate_runs(runners.alg, eval_keys)[""]
    runs = []
    for k in range(num_seeds):
        state = run_slice(runners.alg, k)
        runs.append(GameResult(alg, seed + k, joint_value_tables(trainer, state, situations),
                               greedy_joint_actions(trainer, state, situations), float(results["test_return"][k])))
    return runs


def format_matrix(m: np.ndarray) -> str:
    return "[" + ", ".join("[" + ", ".join(f"{v:.2f}" for v in row) + "]" for row in m) + "]"
