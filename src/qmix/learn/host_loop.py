"""The training loop with episodes collected in Python, for host-side environments (real StarCraft II).

Each iteration: the compiled loop's collection inputs (key and policy per run), episodes played in
Python by HostRollout, then the compiled `absorb` (store, learn, bookkeeping) of learn/loop.py.
"""

from __future__ import annotations

import itertools
import math
from functools import cached_property

import jax
import jax.numpy as jnp
import numpy as np

from qmix.episodes import SEED_AXIS, evaluation_metrics
from qmix.learn.host_rollout import HostRollout
from qmix.learn.write_back import still_to_train


class HostLoop:
    def __init__(self, trainer):
        self.trainer = trainer
        self.config = trainer.config

    @cached_property
    def rollout(self) -> HostRollout:
        c = self.config
        instances = itertools.count()
        make = lambda: self.trainer.make_host_env(c.seed * 1000 + next(instances))  # noqa: E731
        return HostRollout(self.trainer.algorithm, make, c.num_seeds, c.num_envs)

    @cached_property
    def _compiled(self):
        t = self.trainer
        collect = jax.jit(jax.vmap(t.collect_inputs))
        absorb = jax.jit(jax.vmap(t.absorb, axis_name=SEED_AXIS), donate_argnums=(0,))
        test_policies = jax.jit(jax.vmap(t.algorithm.test_policies))
        return collect, absorb, test_policies

    def train_chunk(self, runners, totals, stop_env_steps, stop_episodes, max_iterations):
        """As the compiled loop's `train_chunk`, one iteration of Python-played episodes at a time."""
        collect, absorb, _ = self._compiled
        done = 0
        while done < max_iterations:
            active = np.asarray(still_to_train(runners, stop_env_steps, stop_episodes))
            if not active.any():
                break
            keys, policies = collect(runners)
            episodes, stats = self.rollout.run(policies, keys, active)
            runners, totals = absorb(runners, totals, jnp.asarray(active), episodes, stats)
            done += 1
        return runners, totals, np.int32(done)

    def evaluate_runs(self, alg_states, keys: jax.Array) -> dict[str, dict[str, np.ndarray]]:
        """`test_episodes` greedy episodes per run and test policy, in rounds of num_envs."""
        _, _, test_policies = self._compiled
        return {name: self.evaluate_policies(policies, keys) for name, policies in test_policies(alg_states).items()}

    def evaluate_policies(self, policies, keys: jax.Array) -> dict[str, np.ndarray]:
        c = self.config
        rounds = math.ceil(c.test_episodes / c.num_envs)
        everyone = np.ones(c.num_seeds, bool)
        results = []
        for r in range(rounds):
            round_keys = keys if r == 0 else jax.vmap(lambda k, r=r: jax.random.fold_in(k, r))(keys)
            results.append(self.rollout.run(policies, round_keys, everyone)[1])
        stats = jax.tree.map(lambda *parts: np.concatenate(parts, axis=1)[:, : c.test_episodes], *results)
        return evaluation_metrics(stats)

    def close(self) -> None:
        if "rollout" in self.__dict__:
            self.rollout.close()
