"""The mixer family of the QMIX paper (Rashid et al., 2018, sections 4 and 6.3), one registry.

A mixer maps what the agents chose and the global state to the value(s) the TD loss trains:
    MixerInput(chosen_qs [..., N], all_qs [..., N, A], actions [..., N], state [..., S], avail [..., N, A])
        -> q_tot [..., K]
with K = 1 for every factorised mixer and K = N for `none` (IQL: each agent learns on its own). Mixers
that need more than the chosen utilities (e.g. dueling or attention mixers) read `all_qs`, `actions` and
`avail` (e.g. a state value as the max over available actions). A mixer that declares itself monotonic
(dQ_tot/dQ_a >= 0) is checked for it by the contract tests.

Adding a mixer: one class and one `MIXERS.add` line; its `algorithm` fact makes it trainable by that name.
A mixer with settings of its own names their class in its `settings` fact (a frozen dataclass of
`setting(...)` fields): the algorithm it trains under then has them beside the family's.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax import struct

from qmix.nets.mixer_registry import MIXERS, mixer_outputs  # noqa: F401  (read from here too)


@struct.dataclass
class MixerInput:
    chosen_qs: jax.Array  # [..., N] the utility of each agent's chosen (or, for targets, selected) action
    all_qs: jax.Array  # [..., N, A] every action's utility
    actions: jax.Array  # [..., N] int32, the chosen actions
    state: jax.Array  # [..., S] the global state the mixer conditions on
    avail: jax.Array  # [..., N, A] bool, the actions each agent could take in that state


def hidden_layer(x: jax.Array, width: int, layer_norm: bool) -> jax.Array:
    """Dense -> (LayerNorm, for the normalised networks of PQN-style training) -> ReLU."""
    x = nn.Dense(width)(x)
    return nn.relu(nn.LayerNorm()(x) if layer_norm else x)


class StateValue(nn.Module):
    """V(s): the state-dependent bias, a 2-layer ReLU network."""

    embed_dim: int
    layer_norm: bool = False

    @nn.compact
    def __call__(self, state: jax.Array) -> jax.Array:  # [..., S] -> [..., 1]
        return nn.Dense(1)(hidden_layer(state, self.embed_dim, self.layer_norm))


class Hypernet(nn.Module):
    """Maps the state to a layer's weights: linear (layers=1) or Dense-ReLU-Dense (layers=2)."""

    out_dim: int
    layers: int
    embed_dim: int
    layer_norm: bool = False

    @nn.compact
    def __call__(self, state: jax.Array) -> jax.Array:  # [..., S] -> [..., out_dim]
        if self.layers == 2:
            state = hidden_layer(state, self.embed_dim, self.layer_norm)
        return nn.Dense(self.out_dim)(state)


class IndependentMixer(nn.Module):
    """`none` (IQL): no mixing; each agent's utility is trained against its own target."""

    @nn.compact
    def __call__(self, x: MixerInput) -> jax.Array:
        return x.chosen_qs


class VDNMixer(nn.Module):
    """`vdn`: Q_tot = sum_a Q_a."""

    @nn.compact
    def __call__(self, x: MixerInput) -> jax.Array:
        return x.chosen_qs.sum(axis=-1, keepdims=True)


class VDNStateMixer(nn.Module):
    """`vdn_s`: Q_tot = sum_a Q_a + V(s)."""

    embed_dim: int = 32

    @nn.compact
    def __call__(self, x: MixerInput) -> jax.Array:
        return x.chosen_qs.sum(axis=-1, keepdims=True) + StateValue(self.embed_dim)(x.state)


class QMixer(nn.Module):
    """`qmix`: a 2-layer mixing network whose weights come from hypernetworks of the state.

    hidden = ELU(Q @ |W1(s)| + b1(s)),  Q_tot = hidden @ |W2(s)| + V(s)
    With `layer_norm` the hidden layers of the hypernetworks and of V(s) are normalised (PQN-style training).
    """

    embed_dim: int = 32
    hypernet_layers: int = 2
    hypernet_embed_dim: int = 64
    layer_norm: bool = False

    @nn.compact
    def __call__(self, x: MixerInput) -> jax.Array:
        agent_qs, state = x.chosen_qs, x.state
        n_agents = agent_qs.shape[-1]
        hyper = lambda out, name: Hypernet(out, self.hypernet_layers, self.hypernet_embed_dim,  # noqa: E731
                                           self.layer_norm, name=name)
        w1 = jnp.abs(hyper(n_agents * self.embed_dim, "hyper_w1")(state))
        w1 = w1.reshape(*state.shape[:-1], n_agents, self.embed_dim)  # [..., N, E]
        b1 = nn.Dense(self.embed_dim, name="hyper_b1")(state)  # [..., E]
        hidden = nn.elu(jnp.einsum("...n,...ne->...e", agent_qs, w1) + b1)
        w2 = jnp.abs(hyper(self.embed_dim, "hyper_w2")(state))  # [..., E]
        v = StateValue(self.embed_dim, self.layer_norm, name="value")(state)  # [..., 1]
        return (hidden * w2).sum(axis=-1, keepdims=True) + v


class QMixerNoState(nn.Module):
    """`qmix_ns`: QMIX's mixing network with plain learned weights and biases, blind to the state."""

    embed_dim: int = 32

    @nn.compact
    def __call__(self, x: MixerInput) -> jax.Array:
        n_agents = x.chosen_qs.shape[-1]
        init = nn.initializers.lecun_normal()
        w1 = jnp.abs(self.param("w1", init, (n_agents, self.embed_dim)))
        b1 = self.param("b1", nn.initializers.zeros, (self.embed_dim,))
        w2 = jnp.abs(self.param("w2", init, (self.embed_dim, 1)))
        b2 = self.param("b2", nn.initializers.zeros, (1,))
        hidden = nn.elu(x.chosen_qs @ w1 + b1)
        return hidden @ w2 + b2


class QMixerLinear(nn.Module):
    """`qmix_lin`: no hidden layer; a state-conditioned non-negative linear combination plus V(s)."""

    embed_dim: int = 32
    hypernet_layers: int = 2
    hypernet_embed_dim: int = 64

    @nn.compact
    def __call__(self, x: MixerInput) -> jax.Array:
        n_agents = x.chosen_qs.shape[-1]
        w = jnp.abs(Hypernet(n_agents, self.hypernet_layers, self.hypernet_embed_dim, name="hyper_w")(x.state))
        v = StateValue(self.embed_dim, name="value")(x.state)
        return (x.chosen_qs * w).sum(axis=-1, keepdims=True) + v


# The factories the registry (mixer_registry.py) names: each gets the algorithm's settings.
def make_qmix(s) -> QMixer:
    # `mixer_layer_norm`: the mixer's own setting (qmix_settings.py) and PQN's; a family member that trains the
    # mixer with settings of its own (Weighted QMIX) has none
    return QMixer(s.mixing_embed_dim, s.hypernet_layers, s.hypernet_embed_dim, getattr(s, "mixer_layer_norm", False))


def make_vdn(s) -> VDNMixer:
    return VDNMixer()


def make_independent(s) -> IndependentMixer:
    return IndependentMixer()


def make_qmix_ns(s) -> QMixerNoState:
    return QMixerNoState(s.mixing_embed_dim)


def make_qmix_lin(s) -> QMixerLinear:
    return QMixerLinear(s.mixing_embed_dim, s.hypernet_layers, s.hypernet_embed_dim)


def make_vdn_s(s) -> VDNStateMixer:
    return VDNStateMixer(s.mixing_embed_dim)
