"""The one-step cooperative matrix game of Weighted QMIX (Rashid et al., NeurIPS 2020, section 6.1): a
payoff QMIX's monotonic mixing cannot represent.

Two agents, three actions each (A, B, C), one step, the same observation every time. The team is paid
PAYOFF[agent 1's action][agent 2's action] and the episode ends (terminated). The best joint action,
(A, A), pays 8, but either agent leaving it alone costs -12; trained with uniform exploration, a
monotonic Q_tot prefers the safe zeros.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from qmix.envs.base import TimeStep

PAYOFF = ((8.0, -12.0, -12.0), (-12.0, 0.0, 0.0), (-12.0, 0.0, 0.0))
ACTION_NAMES = ("A", "B", "C")


@struct.dataclass
class MatrixGameState:
    steps: jax.Array  # [] int32


class MatrixGame:
    name = "matrix_game"
    n_agents = 2
    n_actions = 3
    obs_dim = 1  # a constant: there is one situation
    state_dim = 1
    episode_limit = 1
    fills_the_limit = True

    def _timestep(self, reward, terminated) -> TimeStep:
        return TimeStep(
            obs=jnp.ones((self.n_agents, self.obs_dim)),
            state=jnp.ones((self.state_dim,)),
            avail_actions=jnp.ones((self.n_agents, self.n_actions), bool),
            reward=jnp.asarray(reward, jnp.float32),
            terminated=jnp.asarray(terminated, bool),
            truncated=jnp.asarray(False),
            won=jnp.asarray(False),
        )

    def observe(self, cell: int = 0) -> TimeStep:
        """What the agents see (the game's only situation), for reading off learned values."""
        return self._timestep(0.0, False)

    def reset(self, key: jax.Array) -> tuple[MatrixGameState, TimeStep]:
        return MatrixGameState(jnp.zeros((), jnp.int32)), self._timestep(0.0, False)

    def step(self, key: jax.Array, env_state: MatrixGameState, actions: jax.Array
             ) -> tuple[MatrixGameState, TimeStep]:
        reward = jnp.array(PAYOFF)[actions[0], actions[1]]
        return MatrixGameState(env_state.steps + 1), self._timestep(reward, True)


def make_matrix_game(name: str, settings) -> MatrixGame:
    return MatrixGame()
