"""Fixed-length rollouts: E environments stepped L steps each without waiting for one another, as
step-based collection (learn/step_collection.py) hands them to an on-policy learner.

Each environment's row is laid out as a whole episode is (episodes.Episodes: slots [E, L+1], steps
[E, L]), but episodes follow one another inside a row and a row continues the previous rollout's:
    starts[t]      slot t begins an episode: the recurrent state and the previous action reset there
    terminated[t]  the task ended at step t: no bootstrap; slot t + 1 is the next episode's first
    truncated[t]   the time limit ended the episode at step t: slot t + 1 holds that episode's final
                   observation to bootstrap from, and the environment resets one step later, at a step
                   that is not `filled` (no action of it is learned from)
    filled[t]      step t was a real environment step
The row's last step bootstraps from slot L, the first slot of the next rollout.

Axes: E environments (B when batched for learning), L steps, N agents.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from qmix.episodes import Episodes, actions_before


@struct.dataclass
class StepRollout:
    steps: Episodes  # [E, L(+1), ...] as described above
    starts: jax.Array  # [E, L+1] bool
    actor_state: Any  # the algorithm's acting state carried into slot 0, [E, ...] (before a reset there)


def previous_actions_across_starts(rollout: StepRollout, first_previous: jax.Array) -> jax.Array:
    """[E, L+1, N]: the action each agent took before each slot, -1 (none) where an episode starts;
    `first_previous` [E, N] is the action before slot 0 (the previous rollout's last)."""
    return actions_before(first_previous, rollout.steps.actions, rollout.starts)


def reset_where(starts: jax.Array, fresh: Any, carried: Any) -> Any:
    """Per environment: `fresh` where `starts` [E], else `carried` (pytrees whose leaves lead with E)."""
    return jax.tree.map(lambda f, c: jnp.where(starts.reshape(starts.shape + (1,) * (c.ndim - 1)), f, c),
                        fresh, carried)
