"""Whole episodes as the replay stores them and the learners read them, padded to the episode limit T.

Axes: B episodes, T steps, N agents, A actions, O observation features, S state features.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
from flax import struct


@dataclass(frozen=True)
class EnvSpec:
    """The static facts of an environment that shapes depend on."""

    n_agents: int
    n_actions: int
    obs_dim: int
    state_dim: int
    episode_limit: int

    @classmethod
    def of(cls, env) -> EnvSpec:
        return cls(env.n_agents, env.n_actions, env.obs_dim, env.state_dim, env.episode_limit)


@struct.dataclass
class Episodes:
    """obs [.., T+1, N, O], state [.., T+1, S], avail [.., T+1, N, A] bool: what was seen in each slot;
    actions [.., T, N] int32, rewards [.., T], terminated / truncated / filled [.., T] bool: each step."""

    obs: jax.Array
    state: jax.Array
    avail: jax.Array
    actions: jax.Array
    rewards: jax.Array
    terminated: jax.Array
    truncated: jax.Array
    filled: jax.Array

    @classmethod
    def empty(cls, spec: EnvSpec, *batch: int) -> Episodes:
        """Padding: all zeros, [*batch, T(+1), ...]."""
        T, N, A = spec.episode_limit, spec.n_agents, spec.n_actions
        return cls(
            obs=jnp.zeros((*batch, T + 1, N, spec.obs_dim), jnp.float32),
            state=jnp.zeros((*batch, T + 1, spec.state_dim), jnp.float32),
            avail=jnp.zeros((*batch, T + 1, N, A), bool),
            actions=jnp.zeros((*batch, T, N), jnp.int32),
            rewards=jnp.zeros((*batch, T), jnp.float32),
            terminated=jnp.zeros((*batch, T), bool),
            truncated=jnp.zeros((*batch, T), bool),
            filled=jnp.zeros((*batch, T), bool),
        )


SEED_AXIS = "seeds"  # the vmapped axis of independent runs trained side by side
EPISODE_METRICS = ("return", "win_rate", "length")  # EpisodeStats.metrics() by name


@struct.dataclass
class EpisodeStats:
    """Per environment, [E]: the episode's return, whether it was won, and its length in steps."""

    returns: jax.Array
    won: jax.Array
    lengths: jax.Array

    def metrics(self) -> dict[str, jax.Array]:
        """Per-episode numbers by name (the loop logs their means as train_<name> and test_<name>)."""
        return dict(zip(EPISODE_METRICS, (self.returns, self.won, self.lengths), strict=True))


def evaluation_metrics(stats: EpisodeStats) -> dict:
    """Greedy test episodes [..., episodes] -> the mean of each per-episode number, test_<name>."""
    return {f"test_{name}": value.mean(axis=-1) for name, value in stats.metrics().items()}


def previous_actions(episodes: Episodes) -> jax.Array:
    """[B, T+1, N]: the action each agent took before each slot; -1 (none) in slot 0."""
    no_action = -jnp.ones_like(episodes.actions[:, :1])  # [B, 1, N]
    return jnp.concatenate([no_action, episodes.actions], axis=1)


def time_buckets(episode_limit: int, count: int) -> list[int]:
    """The lengths a batch may be cut to: `count` evenly spaced steps up to the episode limit."""
    count = max(1, min(count, episode_limit))
    return sorted({-(-episode_limit * (i + 1) // count) for i in range(count)})


def truncate_episodes(batch: Episodes, steps: int) -> Episodes:
    """Keep the first `steps` steps (and `steps + 1` slots) of every episode in the batch."""
    return Episodes(
        obs=batch.obs[:, : steps + 1],
        state=batch.state[:, : steps + 1],
        avail=batch.avail[:, : steps + 1],
        actions=batch.actions[:, :steps],
        rewards=batch.rewards[:, :steps],
        terminated=batch.terminated[:, :steps],
        truncated=batch.truncated[:, :steps],
        filled=batch.filled[:, :steps],
    )
