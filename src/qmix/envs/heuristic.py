"""The paper's heuristic baseline on SMAX (Rashid et al., 2018, section 6): not learned, fully observed.

Every ally attacks the closest living enemy and keeps attacking that same target until it dies, then
picks the next closest. SMAX has no attack-move, so a unit whose target is out of attack range moves
toward it, taking the movement action that shrinks the distance most, and attacks once in range.
The policy reads the true unit positions from the environment state, not the agents' observations.
"""

from __future__ import annotations

import math
from functools import partial

import jax
import jax.numpy as jnp
from flax import struct

from qmix.envs.base import EnvState
from qmix.envs.smax import MOVE_DIRECTIONS, N_MOVE_ACTIONS, NOOP_ACTION, SmaxEnv

NO_TARGET = -1


@struct.dataclass
class HeuristicState:
    target: jax.Array  # [N] int32: the enemy each ally is attacking (index among enemies), or NO_TARGET


@struct.dataclass
class EpisodeStats:
    """Per-episode results of the heuristic, `[E]` = episodes."""

    returns: jax.Array  # [E] float32
    won: jax.Array  # [E] bool
    length: jax.Array  # [E] int32, steps until the episode ended (episode_limit if truncated)
    unavailable_actions: jax.Array  # [E] int32, actions taken that were not available (must be 0)


def heuristic_init(env: SmaxEnv) -> HeuristicState:
    return HeuristicState(target=jnp.full((env.n_agents,), NO_TARGET, jnp.int32))


def _choose_targets(target: jax.Array, distances: jax.Array, enemy_alive: jax.Array) -> jax.Array:
    """Keep a living target; otherwise take the closest living enemy. [N] int32."""
    closest = jnp.argmin(jnp.where(enemy_alive[None, :], distances, jnp.inf), axis=1)  # [N]
    target_alive = (target != NO_TARGET) & enemy_alive[jnp.maximum(target, 0)]  # [N]
    chosen = jnp.where(target_alive, target, closest)
    return jnp.where(jnp.any(enemy_alive), chosen, NO_TARGET).astype(jnp.int32)


def move_toward(offsets: jax.Array) -> jax.Array:
    """offsets: [N, 2] vector to the target. The movement action that closes the distance most: [N].

    Every movement action covers the same distance d, and |v - d u|^2 = |v|^2 - 2 d u.v + d^2, so the
    best direction u is the one most aligned with v.
    """
    alignment = offsets @ jnp.array(MOVE_DIRECTIONS).T  # [N, 4]
    return jnp.argmax(alignment, axis=1)


def heuristic_actions(
    env: SmaxEnv, env_state: EnvState, policy_state: HeuristicState
) -> tuple[jax.Array, HeuristicState]:
    """The heuristic's joint action: ([N] int32 actions, next HeuristicState). Pure JAX."""
    units = env_state.state
    n = env.n_agents
    ally_alive = units.unit_alive[:n]  # [N]
    enemy_alive = units.unit_alive[n:]  # [M]
    offsets = units.unit_positions[None, n:] - units.unit_positions[:n, None]  # [N, M, 2]
    distances = jnp.linalg.norm(offsets, axis=-1)  # [N, M]

    target = _choose_targets(policy_state.target, distances, enemy_alive)
    has_target = target != NO_TARGET
    safe_target = jnp.maximum(target, 0)
    attack = N_MOVE_ACTIONS + safe_target  # [N]
    avail = env.avail_actions(env_state)  # [N, A]
    allies = jnp.arange(n)
    in_range = avail[allies, attack]  # attacks are available exactly when the target is in range
    move = move_toward(offsets[allies, safe_target])
    actions = jnp.where(in_range, attack, move)
    actions = jnp.where(ally_alive & has_target, actions, NOOP_ACTION)
    # a guard, never expected to fire: fall back to the always-available no-op
    actions = jnp.where(avail[allies, actions], actions, NOOP_ACTION).astype(jnp.int32)
    next_target = jnp.where(ally_alive, target, NO_TARGET)
    return actions, HeuristicState(target=next_target)


# ---------------------------------------------------------------------------------------------------
# Evaluation


def _run_episode(env: SmaxEnv, key: jax.Array) -> EpisodeStats:
    """One heuristic episode of at most episode_limit steps; finished episodes stay frozen."""
    reset_key, steps_key = jax.random.split(key)
    env_state, timestep = env.reset(reset_key)
    zero_f, zero_i = jnp.zeros((), jnp.float32), jnp.zeros((), jnp.int32)
    init = (env_state, heuristic_init(env), timestep, zero_f, zero_i, zero_i)

    def advance(carry, step_key):
        env_state, policy_state, timestep, episode_return, length, unavailable = carry
        running = ~timestep.done
        actions, next_policy_state = heuristic_actions(env, env_state, policy_state)
        taken_available = timestep.avail_actions[jnp.arange(env.n_agents), actions]  # [N]
        next_env_state, next_timestep = env.step(step_key, env_state, actions)
        new = (
            next_env_state,
            next_policy_state,
            next_timestep,
            episode_return + next_timestep.reward,
            length + 1,
            unavailable + jnp.sum(~taken_available),
        )
        return jax.tree.map(
            lambda new_leaf, old_leaf: jnp.where(running, new_leaf, old_leaf), new, carry
        ), None

    final, _ = jax.lax.scan(advance, init, jax.random.split(steps_key, env.episode_limit))
    _, _, timestep, episode_return, length, unavailable = final
    return EpisodeStats(
        returns=episode_return, won=timestep.won, length=length, unavailable_actions=unavailable
    )


@partial(jax.jit, static_argnames=("env", "episodes"))
def run_heuristic_episodes(env: SmaxEnv, key: jax.Array, episodes: int) -> EpisodeStats:
    """`episodes` heuristic episodes side by side (vmapped), compiled once per (env, episodes)."""
    return jax.vmap(partial(_run_episode, env))(jax.random.split(key, episodes))


def wilson_interval(successes: int, trials: int, z: float = 1.959964) -> tuple[float, float]:
    """The Wilson score interval for a binomial proportion (95% for the default z)."""
    if trials == 0:
        return 0.0, 1.0
    p = successes / trials
    z2n = z * z / trials
    centre = (p + z2n / 2) / (1 + z2n)
    half_width = z * math.sqrt(p * (1 - p) / trials + z2n / (4 * trials)) / (1 + z2n)
    return max(0.0, centre - half_width), min(1.0, centre + half_width)


def evaluate_heuristic(map_name: str, episodes: int, seed: int, reward: str = "smac") -> dict:
    """The heuristic's test win rate on a map, with a 95% Wilson interval, and its mean return."""
    env = SmaxEnv(map_name, reward=reward)
    stats = jax.device_get(run_heuristic_episodes(env, jax.random.PRNGKey(seed), episodes))
    if stats.unavailable_actions.sum() > 0:
        raise RuntimeError(f"the heuristic took an unavailable action on {map_name}")
    wins = int(stats.won.sum())
    ci_low, ci_high = wilson_interval(wins, episodes)
    return dict(
        win_rate=wins / episodes,
        ci_low=ci_low,
        ci_high=ci_high,
        mean_return=float(stats.returns.mean()),
        episodes=episodes,
    )
