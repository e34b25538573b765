"""MPE's communication tasks (qmix.envs.mpe_communication): the shapes, the speaker's unavailable actions,
the observations padded from jaxmarl's, the global state, the team reward against jaxmarl's rewards, the
exact episode length and the goal distance on hand-placed agents."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from qmix.config import build_config
from qmix.envs import make_env
from qmix.envs.base import episode_metrics

TASKS = ("simple_speaker_listener", "simple_reference")


@pytest.fixture(scope="module", params=TASKS)
def task(request):
    env = make_env(build_config(map=request.param))
    return env, jax.jit(env.step)


def test_each_task_declares_its_shapes_and_its_return_as_headline(task):
    env, _ = task
    shapes = {"simple_speaker_listener": (5, 11, 16), "simple_reference": (50, 21, 40)}[env.name]
    assert (env.n_agents, env.n_actions, env.obs_dim, env.state_dim, env.episode_limit) == (2, *shapes, 25)
    metrics = episode_metrics(env)
    assert not metrics.has_win and metrics.headline == "return"
    assert metrics.names == ("return", "length", "goal_distance")


def test_observations_are_jaxmarls_padded_and_the_speaker_only_speaks(task):
    env, step = task
    env_state, first = env.reset(jax.random.PRNGKey(1))
    env_state, ts = step(jax.random.PRNGKey(2), env_state, jnp.array([2, 4], jnp.int32))
    obs = env.mpe.get_obs(env_state)
    for i, agent in enumerate(env.mpe.agents):
        own = np.asarray(obs[agent])
        np.testing.assert_array_equal(ts.obs[i, : own.shape[0]], own)
        assert not np.asarray(ts.obs[i, own.shape[0]:]).any()  # padding
    if env.name == "simple_speaker_listener":
        assert ts.avail_actions.tolist() == [[True, True, True, False, False], [True] * 5]
        assert np.asarray(env_state.c[0]).tolist() == [0.0, 0.0, 1.0]  # the speaker said word 2
    else:
        assert bool(ts.avail_actions.all())


def test_the_state_holds_positions_goals_and_words_and_the_reward_is_the_sum_of_jaxmarls(task):
    env, step = task
    env_state, _ = env.reset(jax.random.PRNGKey(3))
    before = env_state
    env_state, ts = step(jax.random.PRNGKey(4), env_state, jnp.array([1, 3], jnp.int32))
    _, _, rewards, _, _ = env.mpe.step_env(jax.random.PRNGKey(4), before, dict(zip(env.mpe.agents, jnp.array([1, 3]), strict=True)))
    assert float(ts.reward) == pytest.approx(sum(float(rewards[a]) for a in env.mpe.agents), rel=1e-6)
    p, v, c = np.asarray(env_state.p_pos), np.asarray(env_state.p_vel), np.asarray(env_state.c)
    goal = np.asarray(env_state.goal)
    if env.name == "simple_speaker_listener":
        want = np.concatenate([p[1], v[1], p[2:].ravel(), np.eye(3)[goal], c[0]])
    else:
        want = np.concatenate([p[:2].ravel(), v[:2].ravel(), p[2:].ravel(), np.eye(3)[goal].ravel(), c.ravel()])
    np.testing.assert_allclose(np.asarray(ts.state), want, rtol=1e-6)


def test_an_episode_is_truncated_on_its_last_step_exactly(task):
    env, step = task
    env_state, ts = env.reset(jax.random.PRNGKey(5))
    ends = []
    for t in range(env.episode_limit):
        env_state, ts = step(jax.random.PRNGKey(t), env_state, jnp.zeros((2,), jnp.int32))
        ends.append((bool(ts.terminated), bool(ts.truncated)))
    assert ends == [(False, False)] * (env.episode_limit - 1) + [(False, True)]


def test_the_goal_distance_is_measured_on_hand_placed_agents(task):
    env, _ = task
    env_state, _ = env.reset(jax.random.PRNGKey(6))
    landmarks = jnp.array([[-0.5, 0.0], [0.5, 0.0], [0.0, 0.5]])
    agents = jnp.array([[0.0, 0.0], [0.5, 0.3]])
    env_state = env_state.replace(p_pos=jnp.concatenate([agents, landmarks]))
    if env.name == "simple_speaker_listener":
        env_state = env_state.replace(goal=jnp.int32(1))  # the listener (agent 1) is 0.3 from landmark 1
        assert float(env.goal_distance(env_state)) == pytest.approx(0.3, abs=1e-6)
    else:
        env_state = env_state.replace(goal=jnp.array([0, 1]))  # agent 0: 0.5 from landmark 0; agent 1: 0.3 from 1
        assert float(env.goal_distance(env_state)) == pytest.approx(0.4, abs=1e-6)
