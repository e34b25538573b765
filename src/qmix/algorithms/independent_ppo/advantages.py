"""Generalised advantage estimation (Schulman et al., 2016) over whole stored episodes.

Axes: B episodes, T steps, K value heads (e.g. one per agent). Per-slot values are [B, T+1, K]: slot t is
what was seen before step t, and the slot after an episode's last step holds its final observation, so a
time limit (truncated) bootstraps from it while a terminal step (terminated) does not.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def gae(rewards: jax.Array, terminated: jax.Array, filled: jax.Array, values: jax.Array, gamma: float,
        lam: float) -> jax.Array:
    """rewards, terminated, filled [B, T]; values [B, T+1, K] -> advantages [B, T, K] (0 on padding).

    delta_t = r_t + gamma * (1 - terminated_t) * V_{t+1} - V_t
    A_t     = delta_t + gamma * lam * A_{t+1} while step t + 1 belongs to the same episode, else delta_t
    """
    live = filled[..., None].astype(values.dtype)  # [B, T, 1]
    bootstrap = (1.0 - terminated[..., None].astype(values.dtype)) * values[:, 1:]
    deltas = (rewards[..., None] + gamma * bootstrap - values[:, :-1]) * live  # [B, T, K]
    continues = jnp.concatenate([filled[:, 1:], jnp.zeros_like(filled[:, :1])], axis=1)[..., None]  # [B, T, 1]

    def back(next_advantage, step):
        delta, carries_on = step
        advantage = delta + gamma * lam * jnp.where(carries_on, next_advantage, 0.0)
        return advantage, advantage

    time_major = (jnp.swapaxes(deltas, 0, 1), jnp.swapaxes(continues, 0, 1))
    _, advantages = jax.lax.scan(back, jnp.zeros_like(deltas[:, 0]), time_major, reverse=True)
    return jnp.swapaxes(advantages, 0, 1) * live
