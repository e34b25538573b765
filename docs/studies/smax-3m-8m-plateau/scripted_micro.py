"""How well do simple scripted micro policies do on a SMAX map? A yardstick for learned win rates.

Fully observed, centralised scripts (they read the true state, as the paper's heuristic does), a grid of
two knobs: focus fire on the weakest enemy in range (or on the one closest to the team), and pulling an
ally back out of the fight when an enemy is shooting it and its health is at or below a threshold.

    python docs/studies/smax-3m-8m-plateau/scripted_micro.py --map 3m --episodes 512
"""

from __future__ import annotations

import argparse
import itertools

import jax
import jax.numpy as jnp
import numpy as np

from qmix.envs.heuristic import move_toward, wilson_interval
from qmix.envs.smax import N_MOVE_ACTIONS, NOOP_ACTION, SmaxEnv, attacked_units


def scripted_actions(env: SmaxEnv, env_state, retreat_health: jax.Array, focus_weakest: jax.Array) -> jax.Array:
    """[N] actions. retreat_health: health fraction at or below which a shot-at ally steps back (0: never)."""
    n = env.n_agents
    units = env_state.state
    position, alive, health = units.unit_positions, units.unit_alive, units.unit_health
    health_fraction = health / jnp.asarray(env.smax.unit_type_health)[units.unit_types]
    ally_alive, enemy_alive = alive[:n], alive[n:]
    offsets = position[None, n:] - position[:n, None]  # [N, M, 2] ally -> enemy
    distances = jnp.linalg.norm(offsets, axis=-1)  # [N, M]
    shot_ally = attacked_units(units.prev_attack_actions, n)[n:]  # [M] the ally each enemy shoots
    shot_at = jnp.any((shot_ally[None, :] == jnp.arange(n)[:, None]) & enemy_alive[None, :], axis=1)  # [N]
    avail = env.avail_actions(env_state)  # [N, A]
    in_range = avail[:, N_MOVE_ACTIONS:]  # [N, M] attack actions are available exactly in range
    team_distance = jnp.where(ally_alive[:, None], distances, 0.0).sum(0) / jnp.maximum(ally_alive.sum(), 1)
    score = jnp.where(enemy_alive, focus_weakest * health[n:] + team_distance, jnp.inf)  # [M] lower first
    team_target = jnp.argmin(score)
    own_target = jnp.argmin(jnp.where(in_range, score[None, :], jnp.inf), axis=1)  # [N]
    attack = N_MOVE_ACTIONS + jnp.where(in_range[:, team_target], team_target, own_target)
    closest = jnp.argmin(jnp.where(enemy_alive[None, :], distances, jnp.inf), axis=1)  # [N]
    allies = jnp.arange(n)
    step_back = move_toward(-offsets[allies, closest])
    approach = move_toward(offsets[:, team_target])
    can_shoot = in_range.any(axis=1)
    actions = jnp.where(can_shoot, attack, approach)
    retreat = shot_at & (health_fraction[:n] <= retreat_health) & (ally_alive.sum() > 1) & can_shoot
    actions = jnp.where(retreat, step_back, actions)
    actions = jnp.where(ally_alive, actions, NOOP_ACTION)
    return jnp.where(avail[allies, actions], actions, NOOP_ACTION).astype(jnp.int32)


def play(env: SmaxEnv, key: jax.Array, retreat_health, focus_weakest):
    """One episode: -> (won, return)."""
    reset_key, steps_key = jax.random.split(key)
    env_state, timestep = env.reset(reset_key)

    def advance(carry, step_key):
        env_state, timestep, episode_return = carry
        running = ~(timestep.terminated | timestep.truncated)
        actions = scripted_actions(env, env_state, retreat_health, focus_weakest)
        next_state, next_timestep = env.step(step_key, env_state, actions)
        new = (next_state, next_timestep, episode_return + next_timestep.reward)
        return jax.tree.map(lambda a, b: jnp.where(running, a, b), new, carry), None

    init = (env_state, timestep, jnp.zeros((), jnp.float32))
    (_, timestep, episode_return), _ = jax.lax.scan(advance, init, jax.random.split(steps_key, env.episode_limit))
    return timestep.won, episode_return


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--map", default="3m")
    parser.add_argument("--episodes", type=int, default=512)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    env = SmaxEnv(args.map)
    episodes = jax.jit(jax.vmap(lambda key, r, f: play(env, key, r, f), in_axes=(0, None, None)))
    keys = jax.random.split(jax.random.PRNGKey(args.seed), args.episodes)
    print(f"{args.map}, {args.episodes} episodes per script")
    print("| focus fire on | pull back a shot-at ally at health <= | win rate (95% CI) | mean return |")
    print("|---|---|---|---|")
    for focus, retreat in itertools.product((1.0, 0.0), (0.0, 0.25, 0.45, 0.65)):
        won, returns = jax.device_get(episodes(keys, jnp.float32(retreat), jnp.float32(focus)))
        wins = int(np.sum(won))
        low, high = wilson_interval(wins, args.episodes)
        target = "weakest in range" if focus else "closest to the team"
        pulled = f"{retreat:.0%}" if retreat else "never"
        print(f"| {target} | {pulled} | {wins / args.episodes:.1%} ({low:.1%} to {high:.1%}) | {returns.mean():.2f} |")


if __name__ == "__main__":
    main()
