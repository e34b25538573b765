"""Vmapped, compiled collection of whole episodes with an algorithm's decentralised policy.

All E environments start together and each plays exactly one episode; the loop stops as soon as every
one has ended (or the episode limit T is reached). Finished environments are frozen: their steps are
computed (vmap cannot skip them) but discarded, and their slots stay padding (filled = False).
Axes: E environments, T steps, N agents, A actions.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from qmix.envs.base import Environment, episode_metrics
from qmix.episodes import EnvSpec, Episodes, EpisodeStats


def policy_step(algorithm, policy: Any, key: jax.Array, actor_state: Any, obs: jax.Array, avail: jax.Array):
    """One decentralised step for E environments: -> next key, env-step key, actor state, actions [E, N].

    Shared by the compiled rollout and the host-side one, so both use the keys the same way.
    """
    key, act_key, step_key = jax.random.split(key, 3)
    actor_state, actions = algorithm.act(policy, actor_state, act_key, obs, avail)
    return key, step_key, actor_state, actions


def _where_active(active: jax.Array, new, old):
    """Per environment: take `new` where the episode is still running, else keep `old`."""

    def pick(n, o):
        return jnp.where(active.reshape(active.shape + (1,) * (n.ndim - 1)), n, o)

    return jax.tree.map(pick, new, old)


def _first_slots(env: Environment, n_envs: int, first) -> Episodes:
    """Padding-filled buffers [E, T(+1), ...] with slot 0 holding the first observation."""
    empty = Episodes.empty(EnvSpec.of(env), n_envs)
    return empty.replace(
        obs=empty.obs.at[:, 0].set(first.obs),
        state=empty.state.at[:, 0].set(first.state),
        avail=empty.avail.at[:, 0].set(first.avail_actions),
    )


def run_episodes(algorithm, env: Environment, policy: Any, key: jax.Array, n_envs: int
                 ) -> tuple[Episodes, EpisodeStats]:
    """Play one episode in each of `n_envs` environments with `policy` (exploring or greedy)."""
    reset_key, key = jax.random.split(key)
    env_state, timestep = jax.vmap(env.reset)(jax.random.split(reset_key, n_envs))
    episodes = _first_slots(env, n_envs, timestep)
    T = env.episode_limit

    def still_running(carry):
        t, running = carry[0], carry[-1]
        return (t < T) & running.any()

    def play_step(carry):
        t, key, env_state, timestep, actor_state, episodes, stats, running = carry
        key, step_key, actor_state, actions = policy_step(
            algorithm, policy, key, actor_state, timestep.obs, timestep.avail_actions
        )  # actions [E, N]
        new_env_state, new_ts = jax.vmap(env.step)(jax.random.split(step_key, n_envs), env_state, actions)
        # Time limit: the adapter may not know the configured limit, so the rollout enforces it too.
        at_limit = (t + 1 >= T) & ~new_ts.terminated
        new_ts = new_ts.replace(truncated=new_ts.truncated | at_limit)

        def record(buffer, value):  # write step t (or slot t + 1) for running environments only
            return jnp.where(running.reshape((n_envs,) + (1,) * (value.ndim - 1)), value, buffer)

        episodes = episodes.replace(
            obs=episodes.obs.at[:, t + 1].set(record(episodes.obs[:, t + 1], new_ts.obs)),
            state=episodes.state.at[:, t + 1].set(record(episodes.state[:, t + 1], new_ts.state)),
            avail=episodes.avail.at[:, t + 1].set(record(episodes.avail[:, t + 1], new_ts.avail_actions)),
            actions=episodes.actions.at[:, t].set(record(episodes.actions[:, t], actions)),
            rewards=episodes.rewards.at[:, t].set(record(episodes.rewards[:, t], new_ts.reward)),
            terminated=episodes.terminated.at[:, t].set(running & new_ts.terminated),
            truncated=episodes.truncated.at[:, t].set(running & new_ts.truncated),
            filled=episodes.filled.at[:, t].set(running),
        )
        stats = stats.after_step(running, new_ts)
        env_state = _where_active(running, new_env_state, env_state)
        timestep = _where_active(running, new_ts, timestep)
        running = running & ~(new_ts.terminated | new_ts.truncated)
        return t + 1, key, env_state, timestep, actor_state, episodes, stats, running

    stats = EpisodeStats.zeros(episode_metrics(env), n_envs)
    carry = (jnp.zeros((), jnp.int32), key, env_state, timestep, algorithm.initial_actor_state(n_envs), episodes,
             stats, jnp.ones((n_envs,), bool))
    _, _, _, _, _, episodes, stats, _ = jax.lax.while_loop(still_running, play_step, carry)
    return episodes, stats
