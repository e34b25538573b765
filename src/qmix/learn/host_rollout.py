"""Whole episodes in host-side environments (real StarCraft II), acting with the compiled policy.

The counterpart of rollout.run_episodes for environments stepped from Python: the same episode layout,
the same padding, and the same use of random keys (so a host environment that behaves like a JAX one
gives the very same episodes). Runs are a leading axis S, each with E environments of its own.
Axes: S runs, E environments per run, T steps, N agents, A actions.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import jax
import numpy as np

from qmix.envs.base import episode_metrics
from qmix.envs.sc2 import HostStep
from qmix.episodes import EnvSpec, Episodes, EpisodeStats, reduced
from qmix.learn.rollout import policy_step


class HostEnvironment(Protocol):
    n_agents: int
    n_actions: int
    obs_dim: int
    state_dim: int
    episode_limit: int

    def reset(self) -> HostStep: ...

    def step(self, actions: np.ndarray) -> HostStep: ...

    def close(self) -> None: ...


def _where_runs(run_on: np.ndarray, new, old):
    """Per run [S]: `new` where the run still has an episode going, else `old` (numpy pytrees)."""
    return jax.tree.map(lambda n, o: np.where(run_on.reshape(run_on.shape + (1,) * (o.ndim - 1)), np.asarray(n), o),
                        new, old)


class HostRollout:
    """S x E host environments, made on first use, and one compiled policy step for all of them."""

    def __init__(self, algorithm, make_env: Callable[[], HostEnvironment], num_runs: int, n_envs: int):
        self.algorithm = algorithm
        self.make_env = make_env
        self.num_runs = num_runs
        self.n_envs = n_envs
        self._envs: list[list[HostEnvironment]] | None = None
        self._begin = jax.jit(jax.vmap(lambda key: jax.random.split(key)[1]))
        self._act = jax.jit(jax.vmap(self._policy_step))

    @property
    def envs(self) -> list[list[HostEnvironment]]:
        if self._envs is None:
            self._envs = [[self.make_env() for _ in range(self.n_envs)] for _ in range(self.num_runs)]
        return self._envs

    def close(self) -> None:
        for run_envs in self._envs or []:
            for env in run_envs:
                env.close()
        self._envs = None

    def _policy_step(self, policy, key, actor_state, obs, avail):
        key, _, actor_state, actions = policy_step(self.algorithm, policy, key, actor_state, obs, avail)
        return key, actor_state, actions

    def run(self, policies, keys: jax.Array, active: np.ndarray) -> tuple[Episodes, EpisodeStats]:
        """One episode in each environment of each active run; inactive runs get padding.

        policies and keys [S, 2] carry the run axis; returns numpy [S, E, ...].
        """
        S, E = self.num_runs, self.n_envs
        first_env = self.envs[0][0]
        T, N, A = first_env.episode_limit, first_env.n_agents, first_env.n_actions
        episodes = jax.tree.map(np.array, Episodes.empty(EnvSpec.of(first_env), S, E))
        stats = jax.tree.map(np.array, EpisodeStats.zeros(episode_metrics(first_env), S, E))  # [S, E] each
        running = np.zeros((S, E), bool)
        obs = np.zeros((S, E, N, first_env.obs_dim), np.float32)
        avail = np.zeros((S, E, N, A), bool)
        avail[..., 0] = True  # placeholder for inactive runs: never stepped, but argmax needs a legal action
        for s in np.flatnonzero(active):
            for e, env in enumerate(self.envs[s]):
                first = env.reset()
                obs[s, e], avail[s, e] = first.obs, first.avail_actions
                episodes.obs[s, e, 0], episodes.state[s, e, 0] = first.obs, first.state
                episodes.avail[s, e, 0] = first.avail_actions
                running[s, e] = True

        keys = self._begin(keys)
        actor_state = jax.tree.map(np.asarray, jax.vmap(lambda _: self.algorithm.initial_actor_state(E))(keys))
        t = 0
        while t < T and running.any():
            new_keys, new_actor_state, actions = self._act(policies, keys, actor_state, obs, avail)
            # a run whose episodes have all ended stops drawing keys, as the compiled loop does per run
            run_on = running.any(axis=1)  # [S]
            keys = np.where(run_on[:, None], np.asarray(new_keys), np.asarray(keys))
            actor_state = _where_runs(run_on, new_actor_state, actor_state)
            actions = np.asarray(actions)
            for s, e in zip(*np.nonzero(running), strict=True):
                step = self.envs[s][e].step(actions[s, e])
                episodes.obs[s, e, t + 1], episodes.state[s, e, t + 1] = step.obs, step.state
                episodes.avail[s, e, t + 1] = step.avail_actions
                episodes.actions[s, e, t], episodes.rewards[s, e, t] = actions[s, e], step.reward
                truncated = step.truncated or (t + 1 >= T and not step.terminated)
                episodes.terminated[s, e, t], episodes.truncated[s, e, t] = step.terminated, truncated
                episodes.filled[s, e, t] = True
                stats.returns[s, e] += step.reward
                stats.won[s, e] |= step.won
                stats.lengths[s, e] += 1
                for m in stats.declared.measures:
                    stats.measures[m.name][s, e] = reduced(m, stats.measures[m.name][s, e], step.info[m.name])
                obs[s, e], avail[s, e] = step.obs, step.avail_actions
                running[s, e] = not (step.terminated or truncated)
            t += 1
        return episodes, stats
