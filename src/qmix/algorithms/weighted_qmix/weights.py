"""The two weightings of Weighted QMIX (Rashid et al., NeurIPS 2020, section 5): which steps' QMIX errors
count fully (weight 1) and which count by alpha. Pure maths over [B, T, 1] values."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def optimistic_weights(q_tot: jax.Array, y: jax.Array, alpha: float) -> jax.Array:
    """OW-QMIX: full weight where QMIX underestimates the target (Q_tot < y), alpha elsewhere.
    q_tot, y [B, T, 1] -> [B, T, 1]."""
    return jnp.where(q_tot < y, 1.0, alpha)


def central_weights(actions: jax.Array, greedy_actions: jax.Array, y: jax.Array, greedy_central_value: jax.Array,
                    alpha: float) -> jax.Array:
    """CW-QMIX: full weight where the joint action taken is QMIX's greedy one, or where the target beats
    Q-hat*'s value of that greedy joint action (y > Q-hat*(s, u-hat): the taken action may be better);
    alpha elsewhere. actions, greedy_actions [B, T, N]; y, greedy_central_value [B, T, 1] -> [B, T, 1]."""
    is_greedy = (actions == greedy_actions).all(axis=-1, keepdims=True)
    return jnp.where(is_greedy | (y > greedy_central_value), 1.0, alpha)
