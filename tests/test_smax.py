"""The SMAX adapter (qmix.envs.smax) and the heuristic baseline (qmix.envs.heuristic).

Compiled rollouts are shared through module fixtures; the expensive checks use 3m and 1c3s5z only.
"""

from __future__ import annotations

import inspect
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from qmix.envs.heuristic import evaluate_heuristic, run_heuristic_episodes, wilson_interval
from qmix.envs.smax import (
    COLOSSUS,
    MOVE_DIRECTIONS,
    NOOP_ACTION,
    SMAC_MAX_RETURN,
    SMAX_MAPS,
    UNIT_TYPE_INDEX,
    UNIT_TYPES,
    SmaxEnv,
    list_maps,
)
from qmix.paper import PAPER_MAPS

N_TYPES = len(UNIT_TYPES)  # 7: SMAX's six and the colossus
UNIT_FEATURES = 7 + N_TYPES  # what an agent sees of another unit
OWN_FEATURES = 4 + N_TYPES
EPS = 1e-4

PAPER_MAP_FACTS = {  # map: (allies, enemies, SMAC episode limit)
    "3m": (3, 3, 60),
    "5m": (5, 5, 60),
    "8m": (8, 8, 120),
    "2s3z": (5, 5, 120),
    "3s5z": (8, 8, 150),
    "1c3s5z": (9, 9, 180),
}


def rollout(env: SmaxEnv, key: jax.Array, noop: bool, n_envs: int, n_steps: int) -> dict:
    """Uniformly random available actions (or all "stop" if `noop`), resetting finished envs.

    Returns per-step numpy arrays `[T, E, ...]`; `episode_return` is the return so far, this step included.
    """
    records = _rollout(env, key, jnp.asarray(noop), n_envs, n_steps)
    return jax.tree.map(lambda x: np.asarray(x).swapaxes(0, 1), records)


@partial(jax.jit, static_argnames=("env", "n_envs", "n_steps"))
def _rollout(env: SmaxEnv, key: jax.Array, noop: jax.Array, n_envs: int, n_steps: int) -> dict:
    """`noop` is traced, so the random and the "stop" rollouts of a map share one compilation."""

    def one_env(key):
        reset_key, steps_key = jax.random.split(key)
        env_state, timestep = env.reset(reset_key)

        def advance(carry, key):
            env_state, timestep, episode_return = carry
            action_key, step_key, reset_key = jax.random.split(key, 3)
            avail = timestep.avail_actions  # [N, A]
            random_actions = jax.random.categorical(action_key, jnp.where(avail, 0.0, -jnp.inf))
            actions = jnp.where(noop, NOOP_ACTION, random_actions).astype(jnp.int32)  # [N]
            next_state, next_timestep = env.step(step_key, env_state, actions)
            episode_return = episode_return + next_timestep.reward
            record = dict(
                avail=avail,
                took_available=avail[jnp.arange(env.n_agents), actions],
                reward=next_timestep.reward,
                terminated=next_timestep.terminated,
                truncated=next_timestep.truncated,
                won=next_timestep.won,
                episode_step=next_state.state.step,
                episode_return=episode_return,
                next_avail=next_timestep.avail_actions,
            )
            # start a new episode where this one ended
            fresh_state, fresh_timestep = env.reset(reset_key)
            done = next_timestep.done
            carry = jax.tree.map(
                lambda fresh, old: jnp.where(done, fresh, old),
                (fresh_state, fresh_timestep, jnp.zeros(())),
                (next_state, next_timestep, episode_return),
            )
            return carry, record

        init = (env_state, timestep, jnp.zeros(()))
        _, records = jax.lax.scan(advance, init, jax.random.split(steps_key, n_steps))
        return records

    return jax.vmap(one_env)(jax.random.split(key, n_envs))  # [E, T, ...]


@pytest.fixture(scope="module")
def env_3m():
    return SmaxEnv("3m")


@pytest.fixture(scope="module")
def env_colossus():
    return SmaxEnv("1c3s5z")


@pytest.fixture(scope="module")
def random_3m(env_3m):
    return rollout(env_3m, jax.random.PRNGKey(0), False, n_envs=32, n_steps=100)


@pytest.fixture(scope="module")
def random_colossus(env_colossus):
    return rollout(env_colossus, jax.random.PRNGKey(1), False, n_envs=16, n_steps=128)


@pytest.fixture(scope="module")
def heuristic_3m(env_3m):
    return jax.device_get(run_heuristic_episodes(env_3m, jax.random.PRNGKey(2), 64))


# ---------------------------------------------------------------------------------------------------
# (a) the interface on every paper map


@pytest.mark.parametrize("map_name", PAPER_MAPS)
def test_shapes_and_static_facts(map_name):
    n_allies, n_enemies, episode_limit = PAPER_MAP_FACTS[map_name]
    env = SmaxEnv(map_name)
    assert (env.n_agents, env.n_enemies, env.episode_limit) == (n_allies, n_enemies, episode_limit)
    assert env.n_actions == 5 + n_enemies
    assert env.obs_dim == UNIT_FEATURES * (n_allies - 1 + n_enemies) + OWN_FEATURES
    assert env.state_dim == OWN_FEATURES * (n_allies + n_enemies)

    # shapes by tracing only: no compilation
    key = jax.random.PRNGKey(0)
    env_state, first = jax.eval_shape(env.reset, key)
    actions = jax.ShapeDtypeStruct((n_allies,), jnp.int32)
    _, after = jax.eval_shape(env.step, key, env_state, actions)
    for timestep in (first, after):
        assert timestep.obs.shape == (n_allies, env.obs_dim) and timestep.obs.dtype == jnp.float32
        assert timestep.state.shape == (env.state_dim,) and timestep.state.dtype == jnp.float32
        assert timestep.avail_actions.shape == (n_allies, env.n_actions)
        assert timestep.avail_actions.dtype == jnp.bool_
        assert timestep.reward.shape == () and timestep.reward.dtype == jnp.float32
        for flag in (timestep.terminated, timestep.truncated, timestep.won):
            assert flag.shape == () and flag.dtype == jnp.bool_


def test_registry_and_errors():
    assert list_maps()[: len(PAPER_MAPS)] == list(PAPER_MAPS)
    assert {"5m_vs_6m", "10m_vs_11m", "27m_vs_30m", "3s5z_vs_3s6z", "3s_vs_5z", "6h_vs_8z", "25m"} <= set(
        SMAX_MAPS
    )
    with pytest.raises(ValueError, match="unknown SMAX map '4m'.*3m, 5m, 8m"):
        SmaxEnv("4m")
    with pytest.raises(ValueError, match="reward"):
        SmaxEnv("3m", reward="dense")
    assert SmaxEnv("3m", episode_limit=25).episode_limit == 25
    assert SmaxEnv("3m") == SmaxEnv("3m") and hash(SmaxEnv("3m")) == hash(SmaxEnv("3m"))
    assert SmaxEnv("3m") != SmaxEnv("3m", reward="smax")


def test_smax_maps_match_jaxmarl():
    """SMAX's own maps are passed through unchanged (same unit types, same order)."""
    from jaxmarl.environments.smax.smax_env import MAP_NAME_TO_SCENARIO

    for name, scenario in MAP_NAME_TO_SCENARIO.items():
        if name.startswith("smacv2"):
            continue
        spec = SMAX_MAPS[name]
        ours = [UNIT_TYPE_INDEX[unit] for unit in spec.allies + spec.enemies]
        assert (len(spec.allies), len(spec.enemies)) == (scenario.num_allies, scenario.num_enemies), name
        assert ours == np.asarray(scenario.unit_types).tolist(), name


def test_unit_table_keeps_smax_defaults():
    from jaxmarl.environments.smax import SMAX

    defaults = inspect.signature(SMAX.__init__).parameters
    columns = {
        "unit_type_names": "name",
        "unit_type_shorthands": "shorthand",
        "unit_type_velocities": "velocity",
        "unit_type_attacks": "attack",
        "unit_type_attack_ranges": "attack_range",
        "unit_type_sight_ranges": "sight_range",
        "unit_type_radiuses": "radius",
        "unit_type_health": "health",
        "unit_type_weapon_cooldowns": "weapon_cooldown",
    }
    for argument, field in columns.items():
        smax_values = list(np.asarray(defaults[argument].default).tolist())
        assert [getattr(unit, field) for unit in UNIT_TYPES[:6]] == pytest.approx(smax_values), argument


def test_move_directions_match_smax(env_3m):
    movement, _ = env_3m.smax._env._decode_discrete_actions(jnp.arange(5))
    np.testing.assert_allclose(np.asarray(movement), np.array([*MOVE_DIRECTIONS, (0.0, 0.0)]), atol=1e-6)


# ---------------------------------------------------------------------------------------------------
# (b) action masks


@pytest.mark.parametrize("records_name", ["random_3m", "random_colossus"])
def test_random_masked_steps_take_only_available_actions(records_name, request):
    records = request.getfixturevalue(records_name)
    assert records["took_available"].size >= 3000  # agent-steps
    assert records["took_available"].all()
    # every agent, alive or dead, always has an action ("stop" at least)
    assert records["avail"].any(axis=-1).all() and records["next_avail"].any(axis=-1).all()
    assert records["avail"][..., NOOP_ACTION].all()
    done = records["terminated"] | records["truncated"]
    assert done.sum() > 0  # episodes did end and restart inside the rollout


# ---------------------------------------------------------------------------------------------------
# (c) the colossus


def test_colossus_stats_inside_env(env_colossus, random_colossus):
    smax = env_colossus.smax._env
    c = UNIT_TYPE_INDEX["colossus"]
    assert c == 6 and smax.unit_type_names[c] == "colossus" and smax.unit_type_shorthands[c] == "c"
    inside = {
        "velocity": smax.unit_type_velocities[c],
        "attack": smax.unit_type_attacks[c],
        "attack_range": smax.unit_type_attack_ranges[c],
        "sight_range": smax.unit_type_sight_ranges[c],
        "radius": smax.unit_type_radiuses[c],
        "health": smax.unit_type_health[c],
        "weapon_cooldown": smax.unit_type_weapon_cooldowns[c],
    }
    for field, value in inside.items():
        assert float(value) == pytest.approx(getattr(COLOSSUS, field)), field
    # the documented numbers (docs/smax.md): 200 hit points + 150 shields, one 10-damage hit, range 7
    assert (COLOSSUS.health, COLOSSUS.attack, COLOSSUS.attack_range) == (350.0, 10.0, 7.0)
    assert (COLOSSUS.weapon_cooldown, COLOSSUS.velocity, COLOSSUS.radius) == (1.07, 3.15, 1.0)

    env_state, timestep = env_colossus.reset(jax.random.PRNGKey(3))
    units = env_state.state
    n = env_colossus.n_agents
    assert int(units.unit_types[0]) == c and int(units.unit_types[n]) == c  # one colossus a side
    assert float(units.unit_health[0]) == 350.0
    assert float(timestep.obs[0, -N_TYPES + c]) == 1.0  # the colossus sees itself as one
    assert np.isfinite(random_colossus["reward"]).all()


# ---------------------------------------------------------------------------------------------------
# (d) terminated vs truncated


def _first_episode_end(records: dict) -> tuple[np.ndarray, np.ndarray]:
    """Per env: the step index at which the first episode ended, and whether it ended at all."""
    done = records["terminated"] | records["truncated"]  # [T, E]
    return done.argmax(axis=0), done.any(axis=0)


def test_time_limit_truncates_exactly_at_the_limit():
    """Under "stop" the sides start >= 12 apart: no side can be wiped out in 8 steps, so the limit ends it."""
    env = SmaxEnv("3m", episode_limit=8)
    records = rollout(env, jax.random.PRNGKey(4), True, n_envs=8, n_steps=8)
    assert not records["terminated"].any() and not records["won"].any()
    assert not records["truncated"][:-1].any() and records["truncated"][-1].all()
    assert (records["episode_step"][-1] == 8).all()


def test_noop_episode_on_3m_ends_once_and_consistently(env_3m):
    records = rollout(env_3m, jax.random.PRNGKey(5), True, n_envs=32, n_steps=100)
    end, ended = _first_episode_end(records)
    assert ended.all()
    envs = np.arange(end.size)
    steps = records["episode_step"][end, envs]
    terminated, truncated = records["terminated"][end, envs], records["truncated"][end, envs]
    assert not (terminated & truncated).any()
    assert (truncated == (steps == env_3m.episode_limit)).all()
    assert (steps[terminated] < env_3m.episode_limit).all()
    assert not records["won"][end, envs].any()  # standing still never kills an enemy
    assert (records["episode_return"][end, envs] == 0.0).all()  # so the smac reward is 0


# ---------------------------------------------------------------------------------------------------
# (e) the smac reward


def test_smac_return_is_at_most_20(random_3m, random_colossus):
    for records in (random_3m, random_colossus):
        assert (records["reward"] >= 0.0).all()
        assert records["episode_return"].max() <= SMAC_MAX_RETURN + EPS


def test_won_episode_earns_the_whole_return(heuristic_3m, env_3m):
    returns, won = heuristic_3m.returns, heuristic_3m.won
    assert won.any() and returns.max() <= SMAC_MAX_RETURN + EPS
    # a win removes every enemy hit point and pays every kill and the win bonus: exactly the maximum
    np.testing.assert_allclose(returns[won], SMAC_MAX_RETURN, atol=1e-3)
    assert returns[won].max() > 15.0
    win_bonus = 200.0 * env_3m.smac_reward_scale
    assert (returns[~won] <= SMAC_MAX_RETURN - win_bonus + EPS).all()


def _hand_made_step(env_3m):
    """3m units before and after one step: enemy 0 loses 9 points, enemy 1 dies from 18 points, ally 0 loses
    18 points, ally 2 dies from 9 points; nobody wins."""
    before = env_3m.reset(jax.random.PRNGKey(0))[0].state
    before = before.replace(unit_health=jnp.array([45.0, 45.0, 9.0, 45.0, 18.0, 45.0]))
    after = before.replace(
        unit_health=jnp.array([27.0, 45.0, 0.0, 36.0, 0.0, 45.0]),
        unit_alive=jnp.array([True, True, False, True, False, True]),
    )
    return before, after


def test_smac_reward_by_hand(env_3m):
    before, after = _hand_made_step(env_3m)
    scale = 20.0 / (3 * 10 + 200 + 3 * 45)  # the best return is 20
    assert env_3m.smac_reward_scale == pytest.approx(scale)
    # dealt 9 + 18 points and one kill; the team's own losses do not count
    assert float(env_3m._smac_reward(before, after, signed=False)) == pytest.approx((9 + 18 + 10) * scale)
    # signed: minus half of (9 + 18 points lost, one ally killed)
    expected = (9 + 18 + 10 - 0.5 * (18 + 9 + 10)) * scale
    assert float(env_3m._smac_reward(before, after, signed=True)) == pytest.approx(expected)


def test_signed_smac_reward_charges_exactly_the_team_losses(env_3m):
    signed_env = SmaxEnv("3m", reward="smac_signed")
    assert signed_env != env_3m  # a different setting compiles separately
    # the reward does not change the game: the same keys play the same episodes under both settings
    key = jax.random.PRNGKey(0)
    unsigned, signed = run_heuristic_episodes(env_3m, key, 64), run_heuristic_episodes(signed_env, key, 64)
    np.testing.assert_array_equal(unsigned.won, signed.won)
    np.testing.assert_array_equal(unsigned.length, signed.length)
    won, charged = np.asarray(signed.won), np.asarray(unsigned.returns - signed.returns)
    assert won.any() and (~won).any()
    assert (charged >= -EPS).all()
    # an episode that ended before the limit without a win lost every ally: 3 x 45 points and 3 deaths
    lost = ~won & (np.asarray(signed.length) < 60)
    assert lost.any()
    np.testing.assert_allclose(charged[lost], 0.5 * (3 * 45 + 3 * 10) * env_3m.smac_reward_scale, atol=1e-4)
    # a win still earns 20 before its own losses are charged
    np.testing.assert_allclose(np.asarray(unsigned.returns)[won], SMAC_MAX_RETURN, atol=1e-3)


# ---------------------------------------------------------------------------------------------------
# (f) the heuristic baseline


def test_heuristic_takes_only_available_actions(heuristic_3m):
    assert (heuristic_3m.unavailable_actions == 0).all()
    assert (heuristic_3m.length >= 1).all() and (heuristic_3m.length <= 60).all()


def test_evaluate_heuristic_on_3m(heuristic_3m):
    result = evaluate_heuristic("3m", episodes=64, seed=2)  # same compiled function as heuristic_3m
    assert result["win_rate"] == pytest.approx(heuristic_3m.won.mean())
    assert result["episodes"] == 64
    assert 0.0 <= result["ci_low"] <= result["win_rate"] <= result["ci_high"] <= 1.0
    assert 0.0 <= result["mean_return"] <= SMAC_MAX_RETURN + EPS
    print(f"heuristic on 3m: {result}")


def test_wilson_interval():
    low, high = wilson_interval(0, 10)
    assert low == 0.0 and high == pytest.approx(0.2775, abs=1e-4)
    low, high = wilson_interval(5, 10)
    assert low == pytest.approx(1 - high) and low == pytest.approx(0.2366, abs=1e-4)


def test_attacked_units_follow_smax_naming_by_hand():
    from qmix.envs.smax import NO_UNIT, attacked_units

    # 3 allies, 2 enemies (units 3, 4). Allies name enemies from the first: action 5 -> unit 3, 6 -> unit 4.
    # Enemies name allies from the last: action 5 -> unit 2, 6 -> unit 1. Actions below 5 are moves / stop.
    actions = np.array([5, 6, 4, 5, 6])
    assert attacked_units(actions, n_allies=3).tolist() == [3, 4, NO_UNIT, 2, 1]
