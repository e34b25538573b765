"""Level-Based Foraging (qmix.envs.lbf): jumanji's spawn bug and the adapter's fix, the scenarios, shapes and
available actions, the team reward against jumanji's, and the episode's end by hand: all food eaten
(terminated) and the time limit (truncated, exactly on step 50)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from qmix.config import build_config
from qmix.envs import make_env
from qmix.envs.base import episode_metrics
from qmix.envs.lbf_settings import Scenario

LOAD, NOOP = 5, 0


@pytest.fixture(scope="module")
def env():
    return make_env(build_config(map="lbf-8x8-2p-2f-coop"))


@pytest.fixture(scope="module")
def step(env):
    return jax.jit(env.step)


def test_the_scenarios_parse_as_epymarl_names_them():
    assert Scenario.parse("lbf-2s-8x8-2p-2f-coop") == Scenario(8, 2, 2, 2, True)
    assert Scenario.parse("lbf-15x15-4p-5f") == Scenario(15, 4, 5, 15, False)
    with pytest.raises(ValueError, match="not a Level-Based Foraging scenario"):
        Scenario.parse("lbf-8x9-2p-2f")


def rows_blocked_by_food(generate, keys):
    """Per key: how many agents start in a row whose index equals some food's row or column."""
    def count(key):
        state = generate(key)
        coordinates = state.food_items.position.reshape(-1)  # every food's row and column
        rows = state.agents.position[:, 0]
        return jnp.sum(jnp.any(rows[:, None] == coordinates[None], axis=-1))

    return jax.jit(jax.vmap(count))(keys)


def test_jumanjis_generator_never_spawns_agents_in_rows_named_by_a_food_coordinate_and_the_fix_does(env):
    from jumanji.environments.routing.lbf.generator import RandomGenerator

    keys = jax.random.split(jax.random.PRNGKey(0), 300)
    jumanji_generator = RandomGenerator(8, 2, 2, 8, 3, True)
    assert int(rows_blocked_by_food(jumanji_generator, keys).sum()) == 0  # the bug: whole rows blanked
    fixed = env.lbf._generator
    assert int(rows_blocked_by_food(fixed, keys).sum()) > 100  # such rows are about half the grid

    def overlaps(key):  # agents never on food, never two on one cell
        state = fixed(key)
        cells = jnp.concatenate([state.agents.position, state.food_items.position])
        flat = cells[:, 0] * 8 + cells[:, 1]
        return jnp.sum(flat[:, None] == flat[None]) - flat.shape[0]

    assert int(jax.jit(jax.vmap(overlaps))(keys).sum()) == 0


def test_shapes_available_actions_and_the_return_as_headline(env):
    assert (env.n_agents, env.n_actions, env.obs_dim, env.state_dim, env.episode_limit) == (2, 6, 12, 14, 50)
    metrics = episode_metrics(env)
    assert not metrics.has_win and metrics.headline == "return" and metrics.names[-1] == "food_eaten"
    env_state, ts = env.reset(jax.random.PRNGKey(1))
    _, jumanji_first = env.lbf.reset(jax.random.PRNGKey(1))
    np.testing.assert_array_equal(ts.avail_actions, jumanji_first.observation.action_mask)
    np.testing.assert_array_equal(ts.obs, jumanji_first.observation.agents_view)


def hand_placed(env, eaten_first: bool):
    """Both agents (levels 1 and 2) beside food 1 (level 3); food 0 eaten already or far away."""
    env_state, _ = env.reset(jax.random.PRNGKey(2))
    agents = env_state.agents.replace(position=jnp.array([[3, 2], [3, 4]]), level=jnp.array([1, 2]))
    food = env_state.food_items.replace(position=jnp.array([[6, 6], [3, 3]]), level=jnp.array([3, 3]),
                                        eaten=jnp.array([eaten_first, False]))
    return env_state.replace(agents=agents, food_items=food)


def test_eating_the_last_food_terminates_and_pays_its_share_summed_over_agents(env, step):
    env_state = hand_placed(env, eaten_first=True)
    _, jumanji_ts = env.lbf.step(env_state, jnp.array([LOAD, LOAD]))
    env_state, ts = step(jax.random.PRNGKey(3), env_state, jnp.array([LOAD, LOAD], jnp.int32))
    # jumanji: agent i gets level_i * food level / (sum of loading levels * total food level) = i/3 * 3/6
    np.testing.assert_allclose(np.asarray(jumanji_ts.reward), [1 / 6, 2 / 6], rtol=1e-6)
    assert float(ts.reward) == pytest.approx(0.5, rel=1e-6)  # the food's share of all food: 3 of 6 levels
    assert (bool(ts.terminated), bool(ts.truncated)) == (True, False)
    assert float(ts.info["food_eaten"]) == 1.0


def test_one_agent_alone_cannot_eat_and_the_time_limit_truncates_on_step_50_exactly(env, step):
    env_state = hand_placed(env, eaten_first=False)
    ends = []
    for t in range(env.episode_limit):
        action = jnp.array([LOAD, NOOP] if t == 0 else [NOOP, NOOP], jnp.int32)  # level 1 < 3: not eaten
        env_state, ts = step(jax.random.PRNGKey(t), env_state, action)
        ends.append((bool(ts.terminated), bool(ts.truncated)))
        assert float(ts.reward) == 0.0
    assert ends == [(False, False)] * (env.episode_limit - 1) + [(False, True)]
    assert float(ts.info["food_eaten"]) == 0.0
