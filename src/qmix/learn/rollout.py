"""Vmapped, compiled collection of whole episodes with epsilon-greedy (or greedy) decentralised actions.

All E environments start together and each plays exactly one episode; the loop stops as soon as every
one has ended (or the episode limit T is reached). Finished environments are frozen: their steps are
computed (vmap cannot skip them) but discarded, and their slots stay padding (filled = False).
Axes: E environments, T steps, N agents, A actions.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from qmix.envs.base import Environment, TimeStep
from qmix.learn.learner import Episodes, Learner
from qmix.learn.targets import masked_argmax


@struct.dataclass
class EpisodeStats:
    """Per environment, [E]: the episode's return, whether it was won, and its length in steps."""

    returns: jax.Array
    won: jax.Array
    lengths: jax.Array


def select_actions(key: jax.Array, q: jax.Array, avail: jax.Array, epsilon: jax.Array) -> jax.Array:
    """Epsilon-greedy over available actions, independently per agent: q, avail [..., A] -> [...] int32."""
    explore_key, random_key = jax.random.split(key)
    greedy = masked_argmax(q, avail)
    random = jax.random.categorical(random_key, jnp.where(avail, 0.0, -jnp.inf))
    explore = jax.random.uniform(explore_key, greedy.shape) < epsilon
    return jnp.where(explore, random, greedy).astype(jnp.int32)


def policy_step(learner: Learner, agent_params, key, hidden, obs, last_actions, avail, epsilon):
    """One decentralised, epsilon-greedy step for E environments: -> next key, env-step key, hidden, actions.

    Shared by the compiled rollout and the host-side one, so both use the keys the same way.
    """
    key, act_key, step_key = jax.random.split(key, 3)
    hidden, q = learner.act_values(agent_params, hidden, obs, last_actions)  # [E, N, A]
    return key, step_key, hidden, select_actions(act_key, q, avail, epsilon)


def _where_active(active: jax.Array, new, old):
    """Per environment: take `new` where the episode is still running, else keep `old`."""

    def pick(n, o):
        return jnp.where(active.reshape(active.shape + (1,) * (n.ndim - 1)), n, o)

    return jax.tree.map(pick, new, old)


def _empty_episodes(env: Environment, n_envs: int, first: TimeStep) -> Episodes:
    """Padding-filled buffers [E, T(+1), ...] with slot 0 holding the first observation."""
    T, N, A = env.episode_limit, env.n_agents, env.n_actions
    obs = jnp.zeros((n_envs, T + 1, N, env.obs_dim), jnp.float32).at[:, 0].set(first.obs)
    state = jnp.zeros((n_envs, T + 1, env.state_dim), jnp.float32).at[:, 0].set(first.state)
    avail = jnp.zeros((n_envs, T + 1, N, A), bool).at[:, 0].set(first.avail_actions)
    return Episodes(
        obs=obs,
        state=state,
        avail=avail,
        actions=jnp.zeros((n_envs, T, N), jnp.int32),
        rewards=jnp.zeros((n_envs, T), jnp.float32),
        terminated=jnp.zeros((n_envs, T), bool),
        truncated=jnp.zeros((n_envs, T), bool),
        filled=jnp.zeros((n_envs, T), bool),
    )


def run_episodes(
    learner: Learner,
    env: Environment,
    agent_params,
    key: jax.Array,
    n_envs: int,
    epsilon: jax.Array | float,
) -> tuple[Episodes, EpisodeStats]:
    """Play one episode in each of `n_envs` environments; epsilon = 0 is greedy evaluation."""
    reset_key, key = jax.random.split(key)
    env_state, timestep = jax.vmap(env.reset)(jax.random.split(reset_key, n_envs))
    episodes = _empty_episodes(env, n_envs, timestep)
    T = env.episode_limit

    def still_running(carry):
        t, running = carry[0], carry[-1]
        return (t < T) & running.any()

    def play_step(carry):
        t, key, env_state, timestep, hidden, last_actions, episodes, stats, running = carry
        key, step_key, hidden, actions = policy_step(
            learner, agent_params, key, hidden, timestep.obs, last_actions, timestep.avail_actions, epsilon
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
        stats = EpisodeStats(
            returns=stats.returns + jnp.where(running, new_ts.reward, 0.0),
            won=stats.won | (running & new_ts.won),
            lengths=stats.lengths + running.astype(jnp.int32),
        )
        env_state = _where_active(running, new_env_state, env_state)
        timestep = _where_active(running, new_ts, timestep)
        running = running & ~(new_ts.terminated | new_ts.truncated)
        return t + 1, key, env_state, timestep, hidden, actions, episodes, stats, running

    stats = EpisodeStats(
        returns=jnp.zeros((n_envs,), jnp.float32),
        won=jnp.zeros((n_envs,), bool),
        lengths=jnp.zeros((n_envs,), jnp.int32),
    )
    carry = (
        jnp.zeros((), jnp.int32),
        key,
        env_state,
        timestep,
        learner.initial_hidden(n_envs),
        -jnp.ones((n_envs, env.n_agents), jnp.int32),
        episodes,
        stats,
        jnp.ones((n_envs,), bool),
    )
    carry = jax.lax.while_loop(still_running, play_step, carry)
    return carry[6], carry[7]
