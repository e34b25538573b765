"""The mixer family (PAPER.md section 2), one registry.

Every mixer maps the agents' chosen utilities and the global state to the value(s) the TD loss trains:
    agent_qs [..., N], state [..., S] -> q_tot [..., K]
with K = 1 for every factorised mixer and K = N for `none` (IQL: each agent learns on its own).
Monotonicity (dQ_tot/dQ_a >= 0) holds for all but `none` by construction: non-negative weights
(absolute values) and monotone activations (ELU).
"""

from __future__ import annotations

from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp


class StateValue(nn.Module):
    """V(s): the state-dependent bias, a 2-layer ReLU network."""

    embed_dim: int

    @nn.compact
    def __call__(self, state: jax.Array) -> jax.Array:  # [..., S] -> [..., 1]
        return nn.Dense(1)(nn.relu(nn.Dense(self.embed_dim)(state)))


class Hypernet(nn.Module):
    """Maps the state to a layer's weights: linear (layers=1) or Dense-ReLU-Dense (layers=2)."""

    out_dim: int
    layers: int
    embed_dim: int

    @nn.compact
    def __call__(self, state: jax.Array) -> jax.Array:  # [..., S] -> [..., out_dim]
        if self.layers == 2:
            state = nn.relu(nn.Dense(self.embed_dim)(state))
        return nn.Dense(self.out_dim)(state)


class IndependentMixer(nn.Module):
    """`none` (IQL): no mixing; each agent's utility is trained against its own target."""

    @nn.compact
    def __call__(self, agent_qs: jax.Array, state: jax.Array) -> jax.Array:
        return agent_qs


class VDNMixer(nn.Module):
    """`vdn`: Q_tot = sum_a Q_a."""

    @nn.compact
    def __call__(self, agent_qs: jax.Array, state: jax.Array) -> jax.Array:
        return agent_qs.sum(axis=-1, keepdims=True)


class VDNStateMixer(nn.Module):
    """`vdn_s`: Q_tot = sum_a Q_a + V(s)."""

    embed_dim: int = 32

    @nn.compact
    def __call__(self, agent_qs: jax.Array, state: jax.Array) -> jax.Array:
        return agent_qs.sum(axis=-1, keepdims=True) + StateValue(self.embed_dim)(state)


class QMixer(nn.Module):
    """`qmix`: a 2-layer mixing network whose weights come from hypernetworks of the state.

    hidden = ELU(Q @ |W1(s)| + b1(s)),  Q_tot = hidden @ |W2(s)| + V(s)
    """

    embed_dim: int = 32
    hypernet_layers: int = 2
    hypernet_embed_dim: int = 64

    @nn.compact
    def __call__(self, agent_qs: jax.Array, state: jax.Array) -> jax.Array:
        n_agents = agent_qs.shape[-1]
        hyper = lambda out, name: Hypernet(out, self.hypernet_layers, self.hypernet_embed_dim, name=name)  # noqa: E731
        w1 = jnp.abs(hyper(n_agents * self.embed_dim, "hyper_w1")(state))
        w1 = w1.reshape(*state.shape[:-1], n_agents, self.embed_dim)  # [..., N, E]
        b1 = nn.Dense(self.embed_dim, name="hyper_b1")(state)  # [..., E]
        hidden = nn.elu(jnp.einsum("...n,...ne->...e", agent_qs, w1) + b1)
        w2 = jnp.abs(hyper(self.embed_dim, "hyper_w2")(state))  # [..., E]
        v = StateValue(self.embed_dim, name="value")(state)  # [..., 1]
        return (hidden * w2).sum(axis=-1, keepdims=True) + v


class QMixerNoState(nn.Module):
    """`qmix_ns`: QMIX's mixing network with plain learned weights and biases, blind to the state."""

    embed_dim: int = 32

    @nn.compact
    def __call__(self, agent_qs: jax.Array, state: jax.Array) -> jax.Array:
        n_agents = agent_qs.shape[-1]
        init = nn.initializers.lecun_normal()
        w1 = jnp.abs(self.param("w1", init, (n_agents, self.embed_dim)))
        b1 = self.param("b1", nn.initializers.zeros, (self.embed_dim,))
        w2 = jnp.abs(self.param("w2", init, (self.embed_dim, 1)))
        b2 = self.param("b2", nn.initializers.zeros, (1,))
        hidden = nn.elu(agent_qs @ w1 + b1)
        return hidden @ w2 + b2


class QMixerLinear(nn.Module):
    """`qmix_lin`: no hidden layer; a state-conditioned non-negative linear combination plus V(s)."""

    embed_dim: int = 32
    hypernet_layers: int = 2
    hypernet_embed_dim: int = 64

    @nn.compact
    def __call__(self, agent_qs: jax.Array, state: jax.Array) -> jax.Array:
        n_agents = agent_qs.shape[-1]
        w = jnp.abs(Hypernet(n_agents, self.hypernet_layers, self.hypernet_embed_dim, name="hyper_w")(state))
        v = StateValue(self.embed_dim, name="value")(state)
        return (agent_qs * w).sum(axis=-1, keepdims=True) + v


MixerFactory = Callable[[int, int, int], nn.Module]  # (embed_dim, hypernet_layers, hypernet_embed_dim)

MIXERS: dict[str, MixerFactory] = {
    "none": lambda embed, layers, hyper_embed: IndependentMixer(),
    "vdn": lambda embed, layers, hyper_embed: VDNMixer(),
    "vdn_s": lambda embed, layers, hyper_embed: VDNStateMixer(embed),
    "qmix": lambda embed, layers, hyper_embed: QMixer(embed, layers, hyper_embed),
    "qmix_ns": lambda embed, layers, hyper_embed: QMixerNoState(embed),
    "qmix_lin": lambda embed, layers, hyper_embed: QMixerLinear(embed, layers, hyper_embed),
}


def make_mixer(name: str, embed_dim: int = 32, hypernet_layers: int = 2, hypernet_embed_dim: int = 64) -> nn.Module:
    if name not in MIXERS:
        raise ValueError(f"unknown mixer '{name}': choose one of {', '.join(MIXERS)}")
    return MIXERS[name](embed_dim, hypernet_layers, hypernet_embed_dim)


def mixer_outputs(name: str, n_agents: int) -> int:
    """K: how many values the mixer returns (N for independent learners, else 1)."""
    return n_agents if name == "none" else 1
