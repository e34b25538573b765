"""Whole episodes as the replay stores them and the learners read them, padded to the episode limit T.

Axes: B episodes, T steps, N agents, A actions, O observation features, S state features.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
from flax import struct

from qmix.envs.base import EpisodeMetrics, Measure


@dataclass(frozen=True)
class EnvSpec:
    """The static facts of an environment that shapes depend on."""

    n_agents: int
    n_actions: int
    obs_dim: int
    state_dim: int
    episode_limit: int
    fills_the_limit: bool = False  # every episode lasts exactly episode_limit steps

    @classmethod
    def of(cls, env) -> EnvSpec:
        return cls(env.n_agents, env.n_actions, env.obs_dim, env.state_dim, env.episode_limit,
                   bool(getattr(env, "fills_the_limit", False)))


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


@struct.dataclass
class PackedEpisodes(Episodes):
    """Whole episodes one after another in rows (packing.py): [R, T(+1), ...] as Episodes, and starts
    [R, T+1] bool marking each episode's first slot (where a recurrent state and the previous action reset)."""

    starts: jax.Array


SEED_AXIS = "seeds"  # the vmapped axis of independent runs trained side by side


def reduced(measure: Measure, total, value):
    """A measure's running value after one more step: the step's value ("last") or the sum so far ("sum").
    Plain arithmetic, so it serves jax arrays in the compiled rollout and numbers in the host-side one."""
    return total + value if measure.reduce == "sum" else value


@struct.dataclass
class EpisodeStats:
    """Per environment, [E]: the episode's return, whether it was won, its length in steps, and each of the
    environment's own measures reduced over its steps; `declared` says which of them are metrics."""

    returns: jax.Array
    won: jax.Array
    lengths: jax.Array
    measures: dict[str, jax.Array]  # measure name -> [E] float32
    declared: EpisodeMetrics = struct.field(pytree_node=False)

    @classmethod
    def zeros(cls, declared: EpisodeMetrics, *batch: int) -> EpisodeStats:
        """[*batch] each, before the first step: nothing returned, won, played or measured."""
        return cls(returns=jnp.zeros(batch, jnp.float32), won=jnp.zeros(batch, bool),
                   lengths=jnp.zeros(batch, jnp.int32),
                   measures={m.name: jnp.zeros(batch, jnp.float32) for m in declared.measures},
                   declared=declared)

    def after_step(self, counted: jax.Array, ts) -> EpisodeStats:
        """The running numbers after one more step of TimeStep `ts` [E], for the environments `counted` [E]
        (the others keep theirs)."""
        return self.replace(
            returns=self.returns + jnp.where(counted, ts.reward, 0.0),
            won=self.won | (counted & ts.won),
            lengths=self.lengths + counted.astype(jnp.int32),
            measures={m.name: jnp.where(counted, reduced(m, self.measures[m.name], ts.info[m.name]),
                                        self.measures[m.name]) for m in self.declared.measures},
        )

    def metrics(self) -> dict[str, jax.Array]:
        """Per-episode numbers by the declared names (the loop logs their means as train_<name> and test_<name>)."""
        values = {"return": self.returns, "win_rate": self.won, "length": self.lengths, **self.measures}
        return {name: values[name] for name in self.declared.names}


def evaluation_metrics(stats: EpisodeStats) -> dict:
    """Greedy test episodes [..., episodes] -> the mean of each per-episode number, test_<name>."""
    return {f"test_{name}": value.mean(axis=-1) for name, value in stats.metrics().items()}


def actions_before(first: jax.Array, actions: jax.Array, starts: jax.Array | None = None) -> jax.Array:
    """[B, T+1, N]: the action each agent took before each slot: `first` [B, N] before slot 0, then the
    steps' `actions` [B, T, N]; -1 (none) wherever `starts` [B, T+1] marks an episode's first slot."""
    previous = jnp.concatenate([first[:, None], actions], axis=1)
    return previous if starts is None else jnp.where(starts[..., None], -1, previous)


def previous_actions(episodes: Episodes) -> jax.Array:
    """[B, T+1, N]: the action each agent took before each slot; -1 (none) in slot 0 (packed: at every
    episode's first slot)."""
    starts = episodes.starts if isinstance(episodes, PackedEpisodes) else None
    return actions_before(-jnp.ones_like(episodes.actions[:, 0]), episodes.actions, starts)
