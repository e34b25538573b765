"""The small functional environment interface every adapter implements.

Agents are an axis: per-agent arrays are stacked as `[N, ...]` (N = number of learning agents).
Environments never reset themselves: the rollout decides what happens after an episode ends, so the
observation returned by the last step is the true final observation (needed to bootstrap on truncation).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import jax
from flax import struct

EnvState = Any  # an adapter's own pytree


@struct.dataclass
class TimeStep:
    """What the agents and the learner see after a reset or a step.

    obs:           [N, obs_dim] float32, each agent's own observation
    state:         [state_dim] float32, the global state (for the mixer only)
    avail_actions: [N, n_actions] bool, which actions each agent may take now
    reward:        [] float32, the shared team reward of the step that led here (0 after reset)
    terminated:    [] bool, the task ended (win, loss, or a terminal state): do not bootstrap
    truncated:     [] bool, the time limit ended the episode (and it was not terminated): bootstrap
    won:           [] bool, the episode ended in a win (always False for tasks without one)
    info:          {name: [] float32}, the step's values of the environment's own measures (see Measure)
    """

    obs: jax.Array
    state: jax.Array
    avail_actions: jax.Array
    reward: jax.Array
    terminated: jax.Array
    truncated: jax.Array
    won: jax.Array
    info: dict[str, jax.Array] = struct.field(default_factory=dict)

    @property
    def done(self) -> jax.Array:
        """The episode is over, for either reason (resets the RNN and the episode)."""
        return self.terminated | self.truncated


class EqualByIdentity:
    """Adapters equal (and hashed) by `_identity()`: two adapters of the same task compare equal, so jit
    functions that take one as a static argument are compiled once for both."""

    def _identity(self) -> tuple:
        raise NotImplementedError

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and self._identity() == other._identity()

    def __hash__(self) -> int:
        return hash(self._identity())


@dataclass(frozen=True)
class Measure:
    """A per-episode number an environment reports beyond return, length and win, from TimeStep.info[name].

    reduce: "last" (the value at the episode's final step) or "sum" (added up over its steps).
    """

    name: str
    doc: str
    reduce: str = "last"


@dataclass(frozen=True)
class EpisodeMetrics:
    """What an environment's episodes are measured by (logged as train_<name> and test_<name>)."""

    has_win: bool  # episodes can be won (TimeStep.won): win_rate is measured
    measures: tuple[Measure, ...]  # the environment's own numbers
    headline: str  # the one metric a run is summarised by: win_rate, return, or a measure's name

    @property
    def names(self) -> tuple[str, ...]:
        """Every per-episode metric, by name: return, win_rate (only with a win), length, then the measures."""
        return ("return", *(("win_rate",) if self.has_win else ()), "length", *(m.name for m in self.measures))


def episode_metrics(env) -> EpisodeMetrics:
    """What `env` declares (`has_win`, `measures`, `headline_metric`), with the defaults for what it leaves
    out: no win, no measures, and the win rate (if it has one) or else the return as its headline."""
    has_win = bool(getattr(env, "has_win", False))
    headline = getattr(env, "headline_metric", "win_rate" if has_win else "return")
    return EpisodeMetrics(has_win, tuple(getattr(env, "measures", ())), headline)


class Environment(Protocol):
    """A cooperative multi-agent task with a shared reward, written in JAX (jit- and vmap-safe).

    Static facts are plain Python ints so that shapes are known at trace time.
    """

    name: str
    n_agents: int
    n_actions: int
    obs_dim: int
    state_dim: int
    episode_limit: int  # the most steps an episode can take; the time limit truncates there
    # Optional (episode_metrics() gives the defaults): has_win: bool; measures: tuple[Measure, ...];
    # headline_metric: str. And fills_the_limit: bool (default False): no episode ends before
    # episode_limit, so a batch of them has no padding to pack away (the contract test checks it).

    def reset(self, key: jax.Array) -> tuple[EnvState, TimeStep]: ...

    def step(self, key: jax.Array, env_state: EnvState, actions: jax.Array) -> tuple[EnvState, TimeStep]:
        """Advance one step with `actions` ([N] int32). Must not auto-reset."""
        ...
