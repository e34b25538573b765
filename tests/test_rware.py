"""Robotic Warehouse (qmix.envs.rware): rware's layouts, shapes and action masks, the global state, and the
episode's end: the time limit as a truncation (jumanji calls it a termination), a collision as a termination."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from qmix.config import build_config
from qmix.envs import make_env
from qmix.envs.base import episode_metrics


@pytest.fixture(scope="module")
def tiny():
    return make_env(build_config(map="rware-tiny-4ag", episode_limit=100))


def test_the_layouts_are_rwares(tiny):
    two = make_env(build_config(map="rware-tiny-2ag"))
    small = make_env(build_config(map="rware-small-4ag"))
    assert (two.n_agents, two.n_actions, two.obs_dim, two.episode_limit) == (2, 5, 66, 500)
    assert (two.rware.grid_size, small.rware.grid_size) == ((11, 10), (20, 10))  # 1 x 3 and 2 x 3 shelf blocks
    assert (two.n_shelves, small.n_shelves) == (32, 80)
    assert two.state_dim == 7 * 2 + 3 * 32
    metrics = episode_metrics(tiny)
    assert not metrics.has_win and metrics.headline == "return" and metrics.names[-1] == "deliveries"


def test_observations_masks_and_the_global_state_come_from_jumanjis_state(tiny):
    env_state, ts = tiny.reset(jax.random.PRNGKey(0))
    _, jumanji_first = tiny.rware.reset(jax.random.PRNGKey(0))
    np.testing.assert_array_equal(ts.obs, jumanji_first.observation.agents_view)
    np.testing.assert_array_equal(ts.avail_actions, jumanji_first.observation.action_mask)
    agents, shelves = env_state.agents, env_state.shelves
    rows, columns = tiny.rware.grid_size
    robot = np.concatenate([np.stack([agents.position.x / rows, agents.position.y / columns], -1),
                            np.eye(4)[np.asarray(agents.direction)], np.asarray(agents.is_carrying)[:, None]], -1)
    shelf = np.concatenate([np.stack([shelves.position.x / rows, shelves.position.y / columns], -1),
                            np.asarray(shelves.is_requested)[:, None]], -1)
    np.testing.assert_allclose(np.asarray(ts.state), np.concatenate([robot.ravel(), shelf.ravel()]), rtol=1e-6)


def play(env, key, random: bool):
    """One episode's flags, [T] each, from reset: random available actions, or no-ops (which never collide)."""
    env_state, first = env.reset(key)

    def one(carry, key):
        env_state, ts = carry
        actions = jax.random.categorical(key, jnp.where(ts.avail_actions, 0.0, -jnp.inf)).astype(jnp.int32)
        env_state, ts = env.step(key, env_state, actions if random else jnp.zeros_like(actions))
        return (env_state, ts), (ts.terminated, ts.truncated)

    return jax.lax.scan(one, (env_state, first), jax.random.split(key, env.episode_limit))[1]


def test_the_time_limit_truncates_exactly_and_a_collision_terminates(tiny):
    terminated, truncated = jax.jit(lambda k: play(tiny, k, random=False))(jax.random.PRNGKey(1))
    assert not np.asarray(terminated).any()
    assert np.asarray(truncated).tolist() == [False] * (tiny.episode_limit - 1) + [True]
    # four robots moving at random collide sooner or later: jumanji ends the episode there
    terminated, truncated = jax.jit(jax.vmap(lambda k: play(tiny, k, random=True)))(
        jax.random.split(jax.random.PRNGKey(2), 16))
    terminated, truncated = np.asarray(terminated), np.asarray(truncated)
    first_end = np.argmax(terminated | truncated, axis=1)
    collided = terminated[np.arange(16), first_end]
    assert collided.any(), "no collision in 16 random episodes"
    assert not (terminated & truncated).any()
    assert (first_end[collided] < tiny.episode_limit - 1).all()
