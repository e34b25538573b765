"""Pure TD-target maths: masked maxima, double Q, one-step and TD(lambda) targets.

Time convention for an episode batch padded to T steps (B = batch, T = steps, N = agents, A = actions):
step t uses the observation in slot t and leads to slot t + 1, so per-step arrays are [B, T, ...] and
per-slot arrays (observations, states, available actions, Q-values) are [B, T + 1, ...].

Flags per step t:
    terminated[t]  the task ended at this step: the target does not bootstrap
    truncated[t]   the time limit ended the episode here: the target bootstraps from slot t + 1
    filled[t]      step t happened (False on padding after the episode's end)
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def value_of_actions(values: jax.Array, actions: jax.Array) -> jax.Array:
    """values [..., A], actions [...] int -> [...]: each one's value of its action (Q of the action taken, a
    policy's log-probability of it, ...)."""
    return jnp.take_along_axis(values, actions[..., None], axis=-1)[..., 0]


def masked_argmax(q: jax.Array, avail: jax.Array) -> jax.Array:
    """q [..., A], avail [..., A] bool -> [...] index of the best available action (0 if none is)."""
    return jnp.argmax(jnp.where(avail, q, -jnp.inf), axis=-1)


def masked_max(q: jax.Array, avail: jax.Array) -> jax.Array:
    """q [..., A], avail [..., A] bool -> [...] the best available value (0 where no action is available).

    Slots with no available action are padding; returning 0 (not -inf) keeps 0 * value finite.
    """
    best = jnp.max(jnp.where(avail, q, -jnp.inf), axis=-1)
    return jnp.where(avail.any(axis=-1), best, 0.0)


def next_agent_values(
    target_q: jax.Array, online_q: jax.Array, avail: jax.Array, double_q: bool
) -> jax.Array:
    """Per-agent bootstrap values of the next slot, [..., A] inputs -> [...].

    Plain: the target network's max over available actions.
    Double Q: the online network picks the action (argmax over available actions), the target
    network evaluates it.
    """
    if not double_q:
        return masked_max(target_q, avail)
    best = masked_argmax(jax.lax.stop_gradient(online_q), avail)
    value = value_of_actions(target_q, best)
    return jnp.where(avail.any(axis=-1), value, 0.0)


def next_agent_actions(target_q: jax.Array, online_q: jax.Array, avail: jax.Array, double_q: bool) -> jax.Array:
    """The actions `next_agent_values` evaluates, [..., A] inputs -> [...] int (for mixers that read them)."""
    chooser = jax.lax.stop_gradient(online_q) if double_q else target_q
    return masked_argmax(chooser, avail).astype(jnp.int32)


def one_step_targets(
    rewards: jax.Array, terminated: jax.Array, next_values: jax.Array, gamma: float
) -> jax.Array:
    """y_t = r_t + gamma * (1 - terminated_t) * V_{t+1}.

    rewards, terminated [B, T]; next_values [B, T, K] (the target mixer's value of slot t + 1) -> [B, T, K].
    Truncation does not appear: a time-limit end bootstraps like any other step.
    """
    not_done = 1.0 - terminated.astype(next_values.dtype)
    return rewards[..., None] + gamma * not_done[..., None] * next_values


def lambda_targets(
    rewards: jax.Array,
    terminated: jax.Array,
    filled: jax.Array,
    next_values: jax.Array,
    gamma: float,
    lam: float,
) -> jax.Array:
    """TD(lambda) targets, computed backwards over each episode.

    G_t = r_t + gamma * (1 - terminated_t) * ((1 - l_t) * V_{t+1} + l_t * G_{t+1}),
    with l_t = lam while step t + 1 exists and 0 at the episode's last step, where the return can only
    bootstrap (truncation) or stop (termination). lam = 0 gives one-step targets; lam = 1 on a complete
    (terminated) episode gives the Monte Carlo return.

    rewards, terminated, filled [B, T]; next_values [B, T, K] -> [B, T, K].
    """
    dtype = next_values.dtype
    not_done = 1.0 - terminated.astype(dtype)
    next_filled = jnp.concatenate([filled[:, 1:], jnp.zeros_like(filled[:, :1])], axis=1).astype(dtype)
    trace = lam * next_filled  # [B, T]

    def backward(next_return, step):  # next_return [B, K]
        reward, keep, value, lam_t = step
        g = reward[:, None] + gamma * keep[:, None] * ((1.0 - lam_t[:, None]) * value + lam_t[:, None] * next_return)
        return g, g

    time_major = (
        jnp.swapaxes(rewards, 0, 1),
        jnp.swapaxes(not_done, 0, 1),
        jnp.swapaxes(next_values, 0, 1),
        jnp.swapaxes(trace, 0, 1),
    )
    _, returns = jax.lax.scan(backward, jnp.zeros_like(next_values[:, 0]), time_major, reverse=True)
    return jnp.swapaxes(returns, 0, 1)


def masked_td_loss(q_taken: jax.Array, targets: jax.Array, filled: jax.Array, weights: jax.Array | None = None
                   ) -> jax.Array:
    """Mean squared TD error over real steps only: q_taken, targets [B, T, K], filled [B, T] -> []. With
    `weights` [B, T, K] each squared error is weighted, and the sum is still divided by the number of real
    steps (Weighted QMIX's loss: a weight below 1 shrinks that step's pull, it does not renormalise)."""
    mask = jnp.broadcast_to(filled[..., None], q_taken.shape).astype(q_taken.dtype)
    error = (q_taken - jax.lax.stop_gradient(targets)) * mask
    squared = error**2 if weights is None else jax.lax.stop_gradient(weights) * error**2
    return squared.sum() / jnp.maximum(mask.sum(), 1.0)
