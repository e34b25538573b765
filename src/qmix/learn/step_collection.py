"""Vmapped, compiled step-based collection: E environments stepped L steps per iteration, each resetting
itself when its episode ends, so that none idles while another finishes. The environments, the acting
state and each environment's running episode numbers are carried from one iteration to the next.

What is stored is a step_rollouts.StepRollout (its docstring has the flags). An episode that ends by
termination resets at once: the next slot is the new episode's first. One that ends by truncation keeps
its final observation in the next slot, to bootstrap from, and resets one step later; that step is not
filled and counts no env step (one step in an episode limit's worth).
Axes: E environments, L steps, N agents.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from qmix.envs.base import Environment, episode_metrics
from qmix.episodes import Episodes, EpisodeStats
from qmix.learn.rollout import policy_step
from qmix.step_rollouts import StepRollout, reset_where


@struct.dataclass
class Collector:
    """Where E environments stand between iterations."""

    env_state: Any  # [E] the environments' own states
    timestep: Any  # [E] TimeStep: what the next step acts on
    actor_state: Any  # [E, ...] the algorithm's acting state, as it left the last step (reset at `starts`)
    starts: jax.Array  # [E] bool: the next slot begins an episode
    resetting: jax.Array  # [E] bool: the last step was truncated; the next one resets instead of acting
    stats: EpisodeStats  # [E] the running episodes' numbers so far


def start_collector(algorithm, env: Environment, key: jax.Array, n_envs: int) -> Collector:
    """E fresh environments, each at the first slot of an episode."""
    env_state, timestep = jax.vmap(env.reset)(jax.random.split(key, n_envs))
    return Collector(env_state, timestep, algorithm.initial_actor_state(n_envs), jnp.ones((n_envs,), bool),
                     jnp.zeros((n_envs,), bool), EpisodeStats.zeros(episode_metrics(env), n_envs))


def finished_totals(stats: EpisodeStats, ended: jax.Array) -> dict[str, jax.Array]:
    """The loop's sums over the episodes that `ended` [E]: their count and train_<metric> totals."""
    count = ended.sum().astype(jnp.float32)
    return {"episodes": count, **{f"train_{name}": jnp.where(ended, value, 0).sum().astype(jnp.float32)
                                  for name, value in stats.metrics().items()}}


def run_steps(algorithm, env: Environment, policy: Any, key: jax.Array, collector: Collector, n_steps: int
              ) -> tuple[Collector, StepRollout, dict[str, jax.Array]]:
    """Step every environment `n_steps` times with `policy`: -> where they stand after, the rollout
    [E, L], and the sums over the episodes that ended in it (`finished_totals`)."""
    n_envs = collector.starts.shape[0]
    T = env.episode_limit
    fresh_actor_state = algorithm.initial_actor_state(n_envs)

    def step(c: Collector, step_key):
        key, env_key, actor_state, actions = policy_step(
            algorithm, policy, step_key, reset_where(c.starts, fresh_actor_state, c.actor_state),
            c.timestep.obs, c.timestep.avail_actions)  # actions [E, N]
        new_env_state, new_ts = jax.vmap(env.step)(jax.random.split(env_key, n_envs), c.env_state, actions)
        # Time limit: the adapter may not know the configured limit, so the collector enforces it too.
        at_limit = (c.stats.lengths + 1 >= T) & ~new_ts.terminated
        new_ts = new_ts.replace(truncated=new_ts.truncated | at_limit)
        reset_state, reset_ts = jax.vmap(env.reset)(jax.random.split(key, n_envs))

        acting = ~c.resetting
        terminated, truncated = acting & new_ts.terminated, acting & new_ts.truncated
        ended = terminated | truncated
        stats = c.stats.after_step(acting, new_ts)
        record = dict(obs=c.timestep.obs, state=c.timestep.state, avail=c.timestep.avail_actions, actions=actions,
                      rewards=jnp.where(acting, new_ts.reward, 0.0), terminated=terminated, truncated=truncated,
                      filled=acting, starts=c.starts)
        resets = c.resetting | terminated  # a truncated episode keeps its final observation one more slot
        carried = reset_where(acting, new_ts, c.timestep), reset_where(acting, new_env_state, c.env_state)
        timestep, env_state = reset_where(resets, (reset_ts, reset_state), carried)
        after = Collector(env_state, timestep, actor_state, starts=resets, resetting=truncated & ~terminated,
                          stats=reset_where(ended, EpisodeStats.zeros(stats.declared, n_envs), stats))
        return after, (record, finished_totals(stats, ended))

    after, (record, totals) = jax.lax.scan(step, collector, jax.random.split(key, n_steps))
    rows = jax.tree.map(lambda x: jnp.swapaxes(x, 0, 1), record)  # [E, L, ...]

    def with_last_slot(slots, last):  # [E, L, ...] + the slot after the last step -> [E, L+1, ...]
        return jnp.concatenate([slots, last[:, None]], axis=1)

    steps = Episodes(obs=with_last_slot(rows["obs"], after.timestep.obs),
                     state=with_last_slot(rows["state"], after.timestep.state),
                     avail=with_last_slot(rows["avail"], after.timestep.avail_actions),
                     actions=rows["actions"], rewards=rows["rewards"], terminated=rows["terminated"],
                     truncated=rows["truncated"], filled=rows["filled"])
    rollout = StepRollout(steps, with_last_slot(rows["starts"], after.starts), collector.actor_state)
    return after, rollout, jax.tree.map(lambda x: x.sum(axis=0), totals)
