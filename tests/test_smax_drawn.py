"""SMACv2-style SMAX maps (qmix.envs.smax_maps.DRAWN_MAPS, qmix.envs.smax_draws): unit types and start
positions drawn every episode, and a SMAC reward scale that follows each episode's enemies.

The draws are checked alone (small programs); one compiled reset and one heuristic rollout check them
inside the environment.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from command_line import qmix_cli
from conftest import QUICK_COMPILE
from qmix.envs.heuristic import run_heuristic_episodes
from qmix.envs.smax import SMAC_MAX_RETURN, UNIT_TYPE_INDEX, UNIT_TYPES, SmaxEnv, smac_reward_scale
from qmix.envs.smax_draws import EDGE_MARGIN, SPAWN_NOISE, Smacv2Positions, TeamDraw
from qmix.envs.smax_maps import DRAWN_MAPS, get_map, race_weights

MAP_SIZE = 32.0
EPS = 1e-3


def run_quick(function, *args):
    """`function(*args)` compiled the cheapest way (as the contract tests do): these programs run once."""
    return jax.device_get(jax.jit(function).lower(*args).compile(QUICK_COMPILE)(*args))


def draw_many(generator, n: int, seed: int = 0) -> np.ndarray:
    return run_quick(jax.vmap(generator.generate), jax.random.split(jax.random.PRNGKey(seed), n))


@pytest.fixture(scope="module")
def env_protoss_10_vs_11():
    return SmaxEnv("protoss_10_vs_11")


@pytest.fixture(scope="module")
def resets_protoss_10_vs_11(env_protoss_10_vs_11):
    """The units of 64 episodes' first states (positions [E, U, 2], types [E, U], health [E, U], ...)."""
    keys = jax.random.split(jax.random.PRNGKey(0), 64)
    return run_quick(lambda keys: jax.vmap(env_protoss_10_vs_11.reset)(keys)[0].state, keys)


# ---------------------------------------------------------------------------------------------------
# the maps


def test_drawn_maps_are_listed_under_smax(capsys):
    code, out, _ = qmix_cli(capsys, "maps")
    assert code == 0
    smax_section = out.split("SMAX (jaxmarl):")[1].split("MPE (jaxmarl):")[0]
    listed = [line.split()[0] for line in smax_section.splitlines() if line.startswith(" ")]
    expected = ["smacv2_5_units", "smacv2_10_units", "smacv2_20_units",
                *(f"{race}_{size}" for size in ("5_vs_5", "10_vs_10", "10_vs_11") for race in ("protoss", "terran", "zerg"))]
    assert listed[-len(expected):] == expected
    assert "stalker 0.45, zealot 0.45, colossus 0.1" in out


def test_race_weights_are_smacv2s_less_what_smax_lacks():
    assert race_weights("protoss") == (("stalker", "zealot", "colossus"), (0.45, 0.45, 0.1))
    assert race_weights("terran") == (("marine", "marauder"), (0.5, 0.5))  # no medivac
    assert race_weights("zerg") == (("zergling", "hydralisk"), (0.5, 0.5))  # no baneling
    for name, spec in DRAWN_MAPS.items():
        assert sum(spec.weights) == pytest.approx(1.0) and spec.episode_limit == 200, name
        assert set(spec.unit_types) <= set(UNIT_TYPE_INDEX), name
    six = {unit.name for unit in UNIT_TYPES[:6]}
    assert set(get_map("smacv2_10_units").unit_types) == six  # jaxmarl's: SMAX's six, no colossus
    assert (get_map("zerg_10_vs_11").n_allies, get_map("zerg_10_vs_11").n_enemies) == (10, 11)


def test_smax_smacv2_maps_keep_smax_start_positions_and_race_maps_get_smacv2s():
    from jaxmarl.environments.smax.distributions import SurroundAndReflectPositionDistribution

    smax = SmaxEnv("smacv2_5_units").smax._env
    assert isinstance(smax.position_generator, SurroundAndReflectPositionDistribution)
    assert isinstance(smax.unit_type_generator, TeamDraw)
    assert smax.smacv2_position_generation and smax.smacv2_unit_type_generation
    race = SmaxEnv("terran_5_vs_5").smax._env
    assert isinstance(race.position_generator, Smacv2Positions) and isinstance(race.unit_type_generator, TeamDraw)
    assert not SmaxEnv("3m").smax._env.smacv2_unit_type_generation  # the fixed maps are left as they were


# ---------------------------------------------------------------------------------------------------
# unit types


@pytest.mark.parametrize("name", ["protoss_10_vs_11", "smacv2_5_units"])
def test_team_draw_follows_the_weights_and_mirrors_the_allies(name):
    spec = get_map(name)
    types = draw_many(TeamDraw(spec), 4000)  # [E, U]
    n, m = spec.n_allies, spec.n_enemies
    allowed = [UNIT_TYPE_INDEX[t] for t in spec.unit_types]
    assert types.dtype == np.uint8 and types.shape == (4000, n + m)
    assert np.isin(types, allowed).all()
    np.testing.assert_array_equal(types[:, n : n + min(n, m)], types[:, : min(n, m)])  # enemies mirror allies
    frequencies = [(types[:, :n] == index).mean() for index in allowed]
    np.testing.assert_allclose(frequencies, spec.weights, atol=0.02)
    assert len({tuple(row) for row in types[:20]}) == 20  # 20 episodes, 20 different teams


def test_enemies_beyond_the_allies_get_drawn_types():
    """jaxmarl's own draw leaves them marines (type 0); here the 11th enemy is drawn from the race's weights."""
    spec = get_map("protoss_10_vs_11")
    extra = draw_many(TeamDraw(spec), 4000, seed=1)[:, 2 * spec.n_allies :]  # [E, 1] the 11th enemy
    assert extra.shape == (4000, 1)
    assert not (extra == UNIT_TYPE_INDEX["marine"]).any()
    frequencies = [(extra == UNIT_TYPE_INDEX[t]).mean() for t in spec.unit_types]
    np.testing.assert_allclose(frequencies, spec.weights, atol=0.03)


# ---------------------------------------------------------------------------------------------------
# start positions


def test_smacv2_positions_reflect_or_surround_inside_the_map():
    n, m = 10, 11
    generator = Smacv2Positions(n, m, MAP_SIZE, MAP_SIZE)
    keys = jax.random.split(jax.random.PRNGKey(2), 2000)
    each = jax.vmap(lambda key: (generator.reflected(key), generator.surrounded(key), generator.generate(key)))
    reflected, surrounded, either = run_quick(each, keys)  # each [E, U, 2]
    for positions in (reflected, surrounded, either):
        assert positions.shape == (2000, n + m, 2)
        assert positions.min() >= EDGE_MARGIN and positions.max() <= MAP_SIZE - EDGE_MARGIN
    # reflected: allies left of the middle (SMACv2's buffer of 1), each enemy the mirror image of its ally
    assert reflected[:, :n, 0].max() <= MAP_SIZE / 2 - 1
    np.testing.assert_allclose(reflected[:, n : 2 * n, 0], MAP_SIZE - reflected[:, :n, 0], atol=1e-5)
    np.testing.assert_array_equal(reflected[:, n : 2 * n, 1], reflected[:, :n, 1])
    assert reflected[:, 2 * n :, 0].min() >= MAP_SIZE / 2  # the extra enemy on the right half
    # surrounded: allies at the centre (with SMAX's start noise), enemies come in from up to four corners
    assert np.abs(surrounded[:, :n] - MAP_SIZE / 2).max() <= SPAWN_NOISE
    quadrants = {tuple(q) for q in (surrounded[:, n:] > MAP_SIZE / 2).reshape(-1, 2).tolist()}
    assert len(quadrants) == 4
    # each episode is one or the other, about half and half
    allies_centred = (np.abs(either[:, :n] - MAP_SIZE / 2) <= SPAWN_NOISE).all(axis=(1, 2))
    assert 0.45 < allies_centred.mean() < 0.55


# ---------------------------------------------------------------------------------------------------
# inside the environment: types per episode, and the SMAC reward scale of each episode


def test_reset_draws_each_episodes_types_and_full_health(env_protoss_10_vs_11, resets_protoss_10_vs_11):
    units, n = resets_protoss_10_vs_11, env_protoss_10_vs_11.n_agents
    types = units.unit_types  # [E, U]
    assert np.isin(types, [UNIT_TYPE_INDEX[t] for t in ("stalker", "zealot", "colossus")]).all()
    assert len({tuple(row) for row in types}) > 32  # the types vary across episodes
    assert len(set(types[:, -1].tolist())) > 1  # the extra enemy's too
    np.testing.assert_array_equal(types[:, n : 2 * n], types[:, :n])
    full_health = np.array([unit.health for unit in UNIT_TYPES])[types]
    np.testing.assert_array_equal(units.unit_health, full_health)  # each unit starts at its type's health
    assert units.unit_alive.all()


def test_reward_scale_follows_each_episodes_enemies(env_protoss_10_vs_11, resets_protoss_10_vs_11):
    env, n, m = env_protoss_10_vs_11, 10, 11
    assert env.smac_reward_scale is None  # no one number for the map
    scales = np.asarray(jax.vmap(env.episode_reward_scale)(resets_protoss_10_vs_11))  # [E]
    assert len(set(scales.tolist())) > 1
    # by hand, for episode 0: SMAC's 20 / (10 per enemy killed + 200 for the win + the enemies' health)
    units = jax.tree.map(lambda x: jnp.asarray(x[0]), resets_protoss_10_vs_11)
    enemy_names = [UNIT_TYPES[int(t)].name for t in units.unit_types[n:]]
    enemy_health = sum({"stalker": 160.0, "zealot": 150.0, "colossus": 350.0}[name] for name in enemy_names)
    by_hand = 20.0 / (10 * m + 200 + enemy_health)
    assert scales[0] == pytest.approx(by_hand, rel=1e-6)
    # enemy 0 killed from full health, then every enemy in one winning step: the latter pays the whole 20
    first_health = float(units.unit_health[n])
    one_kill = units.replace(unit_health=units.unit_health.at[n].set(0.0), unit_alive=units.unit_alive.at[n].set(False))
    reward = float(env._smac_reward(units, one_kill, signed=False))
    assert reward == pytest.approx((first_health + 10) * by_hand, rel=1e-5)
    wiped = units.replace(unit_health=units.unit_health.at[n:].set(0.0), unit_alive=units.unit_alive.at[n:].set(False))
    assert float(env._smac_reward(units, wiped, signed=False)) == pytest.approx(SMAC_MAX_RETURN, rel=1e-5)


def test_a_fixed_maps_scale_is_its_one_number_from_the_same_formula():
    env = SmaxEnv("1c3s5z")
    health = 350.0 + 3 * 160.0 + 5 * 150.0
    assert env.smac_reward_scale == smac_reward_scale(9, health) == pytest.approx(20.0 / (90 + 200 + health))
    assert env.episode_reward_scale(None) == env.smac_reward_scale


def test_won_episodes_earn_exactly_20_whatever_the_enemies():
    env = SmaxEnv("protoss_5_vs_5")
    stats = jax.device_get(run_heuristic_episodes(env, jax.random.PRNGKey(0), 32))
    assert stats.won.any() and (stats.unavailable_actions == 0).all()
    np.testing.assert_allclose(stats.returns[stats.won], SMAC_MAX_RETURN, atol=EPS)
    assert stats.returns.max() <= SMAC_MAX_RETURN + EPS and stats.returns.min() >= 0.0
