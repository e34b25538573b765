"""The small functional environment interface every adapter implements.

Agents are an axis: per-agent arrays are stacked as `[N, ...]` (N = number of learning agents).
Environments never reset themselves: the rollout decides what happens after an episode ends, so the
observation returned by the last step is the true final observation (needed to bootstrap on truncation).
"""

from __future__ import annotations

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
    """

    obs: jax.Array
    state: jax.Array
    avail_actions: jax.Array
    reward: jax.Array
    terminated: jax.Array
    truncated: jax.Array
    won: jax.Array

    @property
    def done(self) -> jax.Array:
        """The episode is over, for either reason (resets the RNN and the episode)."""
        return self.terminated | self.truncated


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

    def reset(self, key: jax.Array) -> tuple[EnvState, TimeStep]: ...

    def step(self, key: jax.Array, env_state: EnvState, actions: jax.Array) -> tuple[EnvState, TimeStep]:
        """Advance one step with `actions` ([N] int32). Must not auto-reset."""
        ...
