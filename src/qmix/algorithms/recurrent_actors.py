"""What the stochastic-actor families (IPPO, COMA) share: a network shared by the agents, run on each
agent's own history (observation, previous action, agent id), step by step while acting and over whole
episodes while learning, and the draw of an action from a policy over available actions.

Axes: E environments, B episodes, T steps (T+1 slots), N agents, A actions, H hidden units.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from qmix.episodes import Episodes, previous_actions
from qmix.nets.agent import build_agent_inputs


class HistoryInputs:
    """How the agents' histories enter a network: `n_actions` for the previous action's one-hot, and the
    settings `obs_last_action` and `obs_agent_id`."""

    def __init__(self, n_agents: int, n_actions: int, last_action: bool, agent_id: bool):
        self.n_agents, self.n_actions = n_agents, n_actions
        self.last_action, self.agent_id = last_action, agent_id

    def initial_state(self, n_envs: int, hidden_dim: int) -> tuple[jax.Array, jax.Array]:
        """(hidden state [E, N, H] at zero, previous actions [E, N], -1: none yet)."""
        return jnp.zeros((n_envs, self.n_agents, hidden_dim)), -jnp.ones((n_envs, self.n_agents), jnp.int32)

    def step(self, network, params, actor_state, obs: jax.Array) -> tuple[jax.Array, jax.Array]:
        """One acting step: obs [E, N, O] -> (hidden [E, N, H], outputs [E, N, ...])."""
        hidden, last_actions = actor_state
        inputs = build_agent_inputs(obs, last_actions, self.n_actions, self.last_action, self.agent_id)
        return network.apply(params, hidden, inputs)

    def unroll(self, network, params, episodes: Episodes) -> jax.Array:
        """The network over every slot of whole episodes -> [B, T+1, N, outputs]; the hidden state starts at
        zero in slot 0 (each item is one whole episode, so that is the only place it resets)."""
        inputs = build_agent_inputs(episodes.obs, previous_actions(episodes), self.n_actions, self.last_action,
                                    self.agent_id)  # [B, T+1, N, D]
        hidden = jnp.zeros((episodes.obs.shape[0], self.n_agents, network.hidden_dim))
        _, out = jax.lax.scan(lambda h, x: network.apply(params, h, x), hidden, jnp.swapaxes(inputs, 0, 1))
        return jnp.swapaxes(out, 0, 1)


def draw(key: jax.Array, log_pi: jax.Array, greedy: jax.Array) -> jax.Array:
    """A sample of log pi [..., A] per agent, or with `greedy` its most probable action -> [...] int32."""
    sampled = jax.random.categorical(key, log_pi)
    return jnp.where(greedy, jnp.argmax(log_pi, axis=-1), sampled).astype(jnp.int32)
