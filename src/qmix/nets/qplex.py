"""QPLEX's duplex dueling mixer (Wang et al., "QPLEX: Duplex Dueling Multi-Agent Q-Learning", ICLR 2021).

Each agent's utility is first moved by the state (the "transformation": Q_i <- w_i(s) Q_i + b_i(s), with
w_i > 0), then split dueling-style into V_i = max over the agent's *available* actions of its transformed
utility and A_i = Q_i - V_i <= 0. The joint value is
    Q_tot = sum_i V_i + sum_i lambda_i(s, u) A_i,
with lambda_i(s, u) > 0 from a multi-head attention over the state and the joint action. Since every
A_i <= 0 and every lambda_i > 0, the joint greedy action is the agents' own greedy actions (IGM), while the
action-dependent lambda lets Q_tot represent values no monotonic mixing can.

As in the authors' code, the advantages enter the lambda term without a gradient (the term trains the
attention; the utilities learn through sum_i Q_i), written as
    Q_tot = sum_i Q_i + sum_i (lambda_i - 1) * stop_gradient(A_i),
equal in value to the formula above.

The targets are the family's (td.next_agent_values and the target mixer): the next slot's actions are
picked by the online agents (double Q), valued by the target agents, and the target mixer's V_i is the
max over available actions of the *target* utilities, so A_i of a picked action is <= 0 there too.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from qmix.algorithms.value_decomposition.targets import masked_max
from qmix.nets.mixers import MixerInput


class ReluNetwork(nn.Module):
    """`layers` Dense layers, ReLU between them: [..., D] -> [..., out_dim]."""

    out_dim: int
    layers: int
    embed_dim: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        for _ in range(self.layers - 1):
            x = nn.relu(nn.Dense(self.embed_dim)(x))
        return nn.Dense(self.out_dim)(x)


class AdvantageAttention(nn.Module):
    """lambda_i(s, u) > 0, [..., N]: per head, |key(s)| * sigmoid(agents(s))_i * sigmoid(action(s, u))_i,
    summed over heads."""

    n_agents: int
    heads: int
    layers: int
    embed_dim: int

    @nn.compact
    def __call__(self, state: jax.Array, joint_action: jax.Array) -> jax.Array:
        # state [..., S], joint_action [..., N * A]: every agent's action, one-hot
        state_action = jnp.concatenate([state, joint_action], axis=-1)
        n, layers, width = self.n_agents, self.layers, self.embed_dim
        total = 0.0
        for head in range(self.heads):
            key = jnp.abs(ReluNetwork(1, layers, width, name=f"key_{head}")(state)) + 1e-10  # [..., 1]
            agents = nn.sigmoid(ReluNetwork(n, layers, width, name=f"agents_{head}")(state))
            action = nn.sigmoid(ReluNetwork(n, layers, width, name=f"action_{head}")(state_action))
            total = total + key * agents * action
        return total


class QPLEXMixer(nn.Module):
    """`qplex`: the duplex dueling mixer. -> [..., 1]."""

    hypernet_embed_dim: int = 64
    heads: int = 4
    adv_layers: int = 2
    adv_embed_dim: int = 64

    @nn.compact
    def __call__(self, x: MixerInput) -> jax.Array:
        n_agents, n_actions = x.all_qs.shape[-2:]
        weight = jnp.abs(ReluNetwork(n_agents, 2, self.hypernet_embed_dim, name="hyper_w")(x.state)) + 1e-10
        bias = ReluNetwork(n_agents, 2, self.hypernet_embed_dim, name="hyper_v")(x.state)  # [..., N]
        q = weight * x.chosen_qs + bias  # the transformed utilities, [..., N]
        v = weight * masked_max(x.all_qs, x.avail) + bias  # V_i: the best available transformed utility
        advantage = jax.lax.stop_gradient(q - v)  # A_i <= 0
        joint_action = jax.nn.one_hot(x.actions, n_actions).reshape(*x.actions.shape[:-1], n_agents * n_actions)
        lam = AdvantageAttention(n_agents, self.heads, self.adv_layers, self.adv_embed_dim, name="attention")(
            x.state, joint_action)
        return (q + (lam - 1.0) * advantage).sum(axis=-1, keepdims=True)


def make_qplex(s) -> QPLEXMixer:
    return QPLEXMixer(s.hypernet_embed_dim, s.qplex_heads, s.qplex_adv_hypernet_layers, s.qplex_adv_hypernet_embed)
