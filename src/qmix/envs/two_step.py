"""The two-step matrix game of the QMIX paper (Rashid et al., 2018, section 5) as a JAX environment.

States: 0 = state 1, 1 = state 2A, 2 = state 2B. Actions: 0 = A, 1 = B.
Step 1 pays 0 and agent 1's action picks the next state (A -> 2A, B -> 2B); step 2 pays the state's
matrix entry (rows: agent 1, columns: agent 2) and the episode ends (terminated).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from qmix.envs.base import TimeStep

PAYOFF_2A = ((7.0, 7.0), (7.0, 7.0))
PAYOFF_2B = ((0.0, 1.0), (1.0, 8.0))
STATE_NAMES = ("state 1", "state 2A", "state 2B")


@struct.dataclass
class TwoStepState:
    cell: jax.Array  # [] int32: 0, 1 or 2
    steps: jax.Array  # [] int32


class TwoStepGame:
    name = "two_step"
    n_agents = 2
    n_actions = 2
    obs_dim = 3  # one-hot of the state; both agents see it
    state_dim = 3
    episode_limit = 2
    fills_the_limit = True  # every episode is both steps

    def _timestep(self, cell, reward, terminated) -> TimeStep:
        onehot = jax.nn.one_hot(cell, 3)
        return TimeStep(
            obs=jnp.stack([onehot] * self.n_agents),
            state=onehot,
            avail_actions=jnp.ones((self.n_agents, self.n_actions), bool),
            reward=jnp.asarray(reward, jnp.float32),
            terminated=jnp.asarray(terminated, bool),
            truncated=jnp.asarray(False),
            won=jnp.asarray(False),
        )

    def observe(self, cell: int) -> TimeStep:
        """What the agents see in state `cell` (0: state 1, 1: 2A, 2: 2B), for reading off learned values."""
        return self._timestep(jnp.int32(cell), 0.0, False)

    def reset(self, key: jax.Array) -> tuple[TwoStepState, TimeStep]:
        state = TwoStepState(cell=jnp.zeros((), jnp.int32), steps=jnp.zeros((), jnp.int32))
        return state, self._timestep(state.cell, 0.0, False)

    def step(self, key: jax.Array, env_state: TwoStepState, actions: jax.Array) -> tuple[TwoStepState, TimeStep]:
        first = env_state.cell == 0
        payoff = jnp.array([PAYOFF_2A, PAYOFF_2B])[jnp.maximum(env_state.cell - 1, 0), actions[0], actions[1]]
        reward = jnp.where(first, 0.0, payoff)
        cell = jnp.where(first, 1 + actions[0], env_state.cell).astype(jnp.int32)
        new_state = TwoStepState(cell=cell, steps=env_state.steps + 1)
        return new_state, self._timestep(cell, reward, ~first)


def make_two_step(name: str, settings) -> TwoStepGame:
    return TwoStepGame()
