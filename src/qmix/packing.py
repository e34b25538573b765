"""Episodes packed into fewer rows, so that a learner computes (nearly) real steps only.

A batch of B whole episodes padded to the episode limit T costs B x T steps of unroll, forward, backward
and targets whatever its episodes' lengths; on 3m, where episodes last about 20 of 60 steps, two thirds of
that is padding. Packed, the same episodes lie one after another in R < B rows of the same T steps:

    row r:  | episode a: slots 0..l_a | episode b: slots 0..l_b | ... | unused |

Episode i takes l_i + 1 slots (its steps and the slot after its last step, whose observation the last
target bootstraps from). The step in that slot is not `filled`, so it adds nothing to the loss and cuts the
TD(lambda) trace; `starts` marks each episode's first slot, where the unroll resets the recurrent state and
the previous action. So the loss is the same function of the same episodes, summed in another order.

Episodes go to rows longest first, each to the least filled row (LPT scheduling), which fits whenever the
rows have room to spare; `rows_that_fit` says which row counts fit a batch.
Axes: B episodes, R rows, T steps (T+1 slots), N agents.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from qmix.episodes import Episodes, PackedEpisodes

SMALLEST_ROWS = 0.125  # the fewest rows offered, as a share of the batch's episodes


def row_counts(batch_size: int, count: int) -> list[int]:
    """The row counts a batch may be packed into: `count` of them, spaced geometrically from an eighth of
    the batch up to one row per episode, so a batch gets at most a constant factor more rows than it needs
    (1.35 for 8 counts) wherever its need falls. SMAX's episodes fill from a sixth (8m) to a third (3m) of
    their time limit, so a batch of B needs B/6 to B/3 rows: evenly spaced counts (B/4, B/2, ...) gave 3m's
    batches B/2, and a floor of B/4 gave 8m's B/4 (docs/benchmarks.md, "Packed replay batches")."""
    count = max(1, min(count, batch_size))
    if count == 1:
        return [batch_size]
    shares = [SMALLEST_ROWS ** (1 - i / (count - 1)) for i in range(count)]
    return sorted({max(1, min(batch_size, round(batch_size * share))) for share in shares})


def _assign_rows(lengths: jax.Array, rows: int) -> tuple[jax.Array, jax.Array, jax.Array]:
    """LPT: lengths [B] -> (row [B], first slot [B] of each episode, slots used [R] per row)."""
    sizes = lengths + 1  # the episode's slots, with the one after its last step

    def place(used, i):
        row = jnp.argmin(used)
        return used.at[row].add(sizes[i]), (row, used[row])

    used, (row, offset) = jax.lax.scan(place, jnp.zeros((rows,), jnp.int32), jnp.argsort(-sizes))
    order = jnp.argsort(jnp.argsort(-sizes))  # episode -> its place in the scan
    return row[order], offset[order], used


def rows_that_fit(lengths: jax.Array, counts: list[int], slots: int) -> jax.Array:
    """[len(counts)] bool: whether the episodes of `lengths` [B] fit into that many rows of `slots` slots,
    and into every larger count (so that the smallest such count can be agreed on across runs)."""
    fits = jnp.stack([_assign_rows(lengths, rows)[2].max() <= slots for rows in counts])
    return jnp.flip(jnp.cumprod(jnp.flip(fits))).astype(bool)


def pack_episodes(batch: Episodes, rows: int) -> PackedEpisodes:
    """The episodes of `batch` [B, T] in `rows` rows [R, T], as the module says; they must fit
    (`rows_that_fit`). Unused slots are zeros and not filled."""
    n_episodes, steps = batch.filled.shape
    slots = steps + 1
    lengths = batch.filled.sum(axis=1, dtype=jnp.int32)
    row, offset, _ = _assign_rows(lengths, rows)
    t = jnp.arange(slots)
    # where each source slot (episode i, slot t) goes; slots past the episode's end go nowhere (dropped)
    dest_row = jnp.broadcast_to(row[:, None], (n_episodes, slots))
    dest_slot = jnp.where(t[None] <= lengths[:, None], offset[:, None] + t[None], slots)
    source = jnp.full((rows, slots), -1, jnp.int32).at[dest_row, dest_slot].set(
        jnp.arange(n_episodes * slots, dtype=jnp.int32).reshape(n_episodes, slots), mode="drop")
    used = source >= 0  # [R, T+1]
    episode, slot = jnp.maximum(source, 0) // slots, jnp.maximum(source, 0) % slots
    is_step = used[:, :-1] & (slot[:, :-1] < lengths[episode[:, :-1]])  # [R, T]: a real step, not a last slot

    def at_slots(x):  # [B, T+1, ...] -> [R, T+1, ...]
        picked = x[episode, slot]
        return jnp.where(used.reshape(used.shape + (1,) * (x.ndim - 2)), picked, jnp.zeros_like(picked))

    def at_steps(x):  # [B, T, ...] -> [R, T, ...]
        picked = x[episode[:, :-1], jnp.minimum(slot[:, :-1], steps - 1)]
        return jnp.where(is_step.reshape(is_step.shape + (1,) * (x.ndim - 2)), picked, jnp.zeros_like(picked))

    return PackedEpisodes(obs=at_slots(batch.obs), state=at_slots(batch.state), avail=at_slots(batch.avail),
                          actions=at_steps(batch.actions), rewards=at_steps(batch.rewards),
                          terminated=at_steps(batch.terminated), truncated=at_steps(batch.truncated),
                          filled=at_steps(batch.filled), starts=(slot == 0) | ~used)
