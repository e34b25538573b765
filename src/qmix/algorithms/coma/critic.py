"""COMA's centralised critic and what is read off it (Foerster et al., 2018, "Counterfactual Multi-Agent
Policy Gradients", section 4).

For agent a the critic sees the state and the other agents' actions u_-a, and outputs Q(s, (u_-a, u')) for
every action u' of a at once, so one forward pass gives both the value of the joint action taken and every
term of a's counterfactual baseline b_a = sum_u' pi_a(u' | tau_a) Q(s, (u_-a, u')).

Axes: B episodes, T steps (T+1 slots, as in value_decomposition/targets.py), N agents, A actions,
S state features, O observation features, D critic input features.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from qmix.algorithms.value_decomposition.targets import lambda_targets, value_of_actions


class COMACritic(nn.Module):
    """Dense -> ReLU -> Dense -> ReLU -> Dense: one value per action of the agent whose input it is
    (the authors' feed-forward critic)."""

    n_actions: int
    hidden_dim: int = 128

    @nn.compact
    def __call__(self, inputs: jax.Array) -> jax.Array:  # [..., D] -> [..., A]
        x = nn.relu(nn.Dense(self.hidden_dim, name="fc1")(inputs))
        x = nn.relu(nn.Dense(self.hidden_dim, name="fc2")(x))
        return nn.Dense(self.n_actions, name="q")(x)


def critic_input_dim(state_dim: int, obs_dim: int, n_agents: int, n_actions: int) -> int:
    return state_dim + obs_dim + 2 * n_agents * n_actions + n_agents


def critic_inputs(state: jax.Array, obs: jax.Array, actions: jax.Array, last_actions: jax.Array,
                  n_actions: int) -> jax.Array:
    """Per agent a and slot: [state, a's observation, every agent's action one-hot with a's own zeroed,
    every agent's previous action one-hot, a's index one-hot].

    state [..., S], obs [..., N, O], actions and last_actions [..., N] int (-1: none, all zeros)
    -> [..., N, D] with D = S + O + 2 N A + N.
    """
    n = obs.shape[-2]
    lead = obs.shape[:-2]
    dtype = obs.dtype
    joint = jax.nn.one_hot(actions, n_actions, dtype=dtype)  # [..., N, A]
    others = joint[..., None, :, :] * (1.0 - jnp.eye(n, dtype=dtype))[:, :, None]  # [..., N (whose), N, A]
    last = jax.nn.one_hot(last_actions, n_actions, dtype=dtype).reshape(*lead, 1, n * n_actions)
    parts = [
        jnp.broadcast_to(state[..., None, :], (*lead, n, state.shape[-1])),
        obs,
        others.reshape(*lead, n, n * n_actions),
        jnp.broadcast_to(last, (*lead, n, n * n_actions)),
        jnp.broadcast_to(jnp.eye(n, dtype=dtype), (*lead, n, n)),
    ]
    return jnp.concatenate(parts, axis=-1)


def slot_actions(actions: jax.Array, filled: jax.Array, bootstrap_actions: jax.Array) -> jax.Array:
    """The joint action of every slot, for the critic: actions [B, T, N] taken on real steps, and
    bootstrap_actions [B, T+1, N] (drawn from the policy) in every other slot -> [B, T+1, N].

    The slot after an episode's last step has no action taken, yet a time limit there bootstraps from
    Q(s, u) of that slot; the authors' runner likewise draws an action in the last stored slot.
    """
    padded = jnp.concatenate([actions, jnp.zeros_like(actions[:, :1])], axis=1)
    real = jnp.concatenate([filled, jnp.zeros_like(filled[:, :1])], axis=1)[..., None]  # [B, T+1, 1]
    return jnp.where(real, padded, bootstrap_actions).astype(jnp.int32)


# each agent's value of the joint action taken: q [..., N, A], actions [..., N] -> [..., N]
taken_values = value_of_actions


def critic_targets(target_q: jax.Array, actions: jax.Array, rewards: jax.Array, terminated: jax.Array,
                   filled: jax.Array, gamma: float, lam: float) -> jax.Array:
    """TD(lambda) targets per agent from the target critic's value of the joint action in the next slots.

    target_q [B, T+1, N, A], actions [B, T+1, N] (slot_actions); rewards, terminated, filled [B, T]
    -> [B, T, N] (the agent axis is lambda_targets' K: every agent shares the team reward).
    """
    next_values = taken_values(target_q, actions)[:, 1:]  # [B, T, N]
    return lambda_targets(rewards, terminated, filled, next_values, gamma, lam)


def counterfactual_advantages(q: jax.Array, pi: jax.Array, actions: jax.Array) -> tuple[jax.Array, jax.Array]:
    """A_a = Q(s, u)_a - b_a with b_a = sum_u' pi_a(u') Q(s, (u_-a, u'))  (the paper's eq. 4).

    q [..., N, A] (row a: a's action varied, the others' fixed), pi [..., N, A] (0 on unavailable actions),
    actions [..., N] -> (advantages, baselines), each [..., N].
    """
    baselines = (pi * q).sum(axis=-1)
    return taken_values(q, actions) - baselines, baselines
