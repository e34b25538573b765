"""Runs that have reached their stop keep their state while the other seeds go on.

The compiled loop iterates while any seed is short of its stop and is written outside the seed vmap:
a vmapped loop with a per-seed condition would select between the old and new state of every run in
every iteration, replay included, which costs a copy of every replay per iteration. Instead each
iteration computes every run and an inactive run writes its old state back: the small parts by
selection (`keep_if_inactive`), the replay by writing back the slots it would have used (`store`), so the
cost is that of the new episodes, never of a copy of the whole replay.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def keep_if_inactive(active: jax.Array, new, old):
    """`new` where the run is active, else `old` (one run; `active` is a [] bool)."""
    return jax.tree.map(lambda n, o: jnp.where(active, n, o), new, old)


def store(buffer, replay, items, active: jax.Array, capacity: int):
    """Add `items` [E, ...] to a flashbax item buffer; an inactive run leaves the buffer as it was.

    Relies on flashbax's item-buffer layout: experience [1, capacity, ...], current_index, is_full.
    """
    n_items = jax.tree.leaves(items)[0].shape[0]
    slots = (jnp.arange(n_items) + replay.current_index) % capacity
    present = jax.tree.map(lambda x: x[0, slots], replay.experience)
    added = buffer.add(replay, keep_if_inactive(active, items, present))
    return added.replace(
        current_index=jnp.where(active, added.current_index, replay.current_index),
        is_full=jnp.where(active, added.is_full, replay.is_full),
    )


def still_to_train(runners, stop_env_steps, stop_episodes):
    """[S] bool: the runs that have not reached their stop (in env steps or episodes) yet; for arrays on the
    device (inside the compiled loop) or on the host alike."""
    return (runners.env_steps < stop_env_steps) & (runners.episodes < stop_episodes)
