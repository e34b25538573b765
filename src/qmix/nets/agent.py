"""Agent networks: one set of parameters shared by all agents (the agent axis is just a batch axis).

Both networks take and return a hidden state so the learner and the rollout treat them alike;
the feed-forward one passes it through unchanged.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from qmix.nets.agent_registry import AGENTS  # noqa: F401  (read from here too)


class RecurrentAgent(nn.Module):
    """DRQN: Dense -> ReLU -> GRU -> Dense, one Q-value per action."""

    n_actions: int
    hidden_dim: int = 64

    @nn.compact
    def __call__(self, hidden: jax.Array, inputs: jax.Array) -> tuple[jax.Array, jax.Array]:
        # hidden [..., H], inputs [..., D] -> hidden [..., H], q [..., A]
        x = nn.relu(nn.Dense(self.hidden_dim, name="embed")(inputs))
        hidden, _ = nn.GRUCell(self.hidden_dim, name="gru")(hidden, x)
        return hidden, nn.Dense(self.n_actions, name="q")(hidden)


class NormalisedRecurrentAgent(nn.Module):
    """PQN's agent (Gallici et al., 2025): two Dense -> LayerNorm -> ReLU layers, a GRU, then a Dense
    Q-value per action. LayerNorm is what lets TD learning do without a target network there."""

    n_actions: int
    hidden_dim: int = 64

    @nn.compact
    def __call__(self, hidden: jax.Array, inputs: jax.Array) -> tuple[jax.Array, jax.Array]:
        x = inputs
        for layer in range(2):
            x = nn.relu(nn.LayerNorm(name=f"norm_{layer}")(nn.Dense(self.hidden_dim, name=f"embed_{layer}")(x)))
        hidden, _ = nn.GRUCell(self.hidden_dim, name="gru")(hidden, x)
        return hidden, nn.Dense(self.n_actions, name="q")(hidden)


class FeedForwardAgent(nn.Module):
    """Dense -> ReLU -> Dense (the two-step game's agent); the hidden state is unused."""

    n_actions: int
    hidden_dim: int = 64

    @nn.compact
    def __call__(self, hidden: jax.Array, inputs: jax.Array) -> tuple[jax.Array, jax.Array]:
        x = nn.relu(nn.Dense(self.hidden_dim, name="embed")(inputs))
        return hidden, nn.Dense(self.n_actions, name="q")(x)


def make_agent(kind: str, n_actions: int, hidden_dim: int) -> nn.Module:
    return AGENTS.get(kind)(n_actions, hidden_dim)


def agent_input_dim(obs_dim: int, n_agents: int, n_actions: int, last_action: bool, agent_id: bool) -> int:
    return obs_dim + (n_actions if last_action else 0) + (n_agents if agent_id else 0)


def build_agent_inputs(
    obs: jax.Array, last_actions: jax.Array, n_actions: int, last_action: bool, agent_id: bool
) -> jax.Array:
    """obs [..., N, O], last_actions [..., N] int (-1: none yet) -> inputs [..., N, D].

    The previous action is one-hot (all zeros at the first step); the agent id is one-hot.
    """
    parts = [obs]
    if last_action:
        parts.append(jax.nn.one_hot(last_actions, n_actions, dtype=obs.dtype))  # -1 -> zeros
    if agent_id:
        n_agents = obs.shape[-2]
        ids = jnp.broadcast_to(jnp.eye(n_agents, dtype=obs.dtype), (*obs.shape[:-1], n_agents))
        parts.append(ids)
    return jnp.concatenate(parts, axis=-1)
