"""The MPE simple_spread adapter (qmix.envs.mpe): shapes, the team reward against jaxmarl's own rewards, the
episode's exact length, the measures on hand-placed agents, no auto-reset, and QMIX and VDN end to end."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from qmix.config import build_config
from qmix.envs import make_env
from qmix.envs.base import episode_metrics
from qmix.envs.mpe import OCCUPIED_DISTANCE, SimpleSpreadEnv

NOOP = 0
N = 3  # jaxmarl's default: 3 agents, 3 landmarks
LANDMARKS = jnp.array([[-0.8, -0.8], [0.0, 0.8], [0.8, -0.8]])  # far apart from each other


@pytest.fixture(scope="module")
def env() -> SimpleSpreadEnv:
    return make_env(build_config(map="simple_spread"))


@pytest.fixture(scope="module")
def step(env):
    return jax.jit(env.step)


def placed(env, agents: jax.Array):
    """A fresh state with the agents ([N, 2]) and the landmarks (LANDMARKS) placed by hand, all at rest."""
    env_state, _ = env.reset(jax.random.PRNGKey(0))
    return env_state.replace(p_pos=jnp.concatenate([agents, LANDMARKS]), p_vel=jnp.zeros((2 * N, 2)))


def stand_still(env, step, env_state):
    """One step of no-ops: positions do not move within it (they move by the velocities, which are zero)."""
    return step(jax.random.PRNGKey(1), env_state, jnp.full((env.n_agents,), NOOP, jnp.int32))


def test_simple_spread_declares_its_facts_and_measures(env):
    assert (env.n_agents, env.n_actions, env.episode_limit) == (N, 5, 25)
    assert env.obs_dim == 18  # own velocity 2, own position 2, landmarks 3 x 2, other agents 2 x 2, silent comms 2 x 2
    assert env.state_dim == 18  # agent positions 3 x 2, agent velocities 3 x 2, landmark positions 3 x 2
    metrics = episode_metrics(env)
    assert not metrics.has_win and metrics.headline == "return"
    assert metrics.names == ("return", "length", "collisions", "occupied_landmarks", "landmark_distance")
    assert {m.name: m.reduce for m in env.measures} == {
        "collisions": "sum", "occupied_landmarks": "last", "landmark_distance": "last"}


def test_obs_and_state_hold_jaxmarl_observations_and_the_physical_state(env, step):
    env_state, ts = env.reset(jax.random.PRNGKey(3))
    env_state, ts = step(jax.random.PRNGKey(4), env_state, jnp.array([1, 2, 4], jnp.int32))  # moving: velocities
    obs = env.mpe.get_obs(env_state)
    np.testing.assert_array_equal(ts.obs, np.stack([obs[a] for a in env.mpe.agents]))
    assert ts.obs.shape == (N, env.obs_dim) and ts.obs.dtype == jnp.float32
    positions, velocities = np.asarray(env_state.p_pos), np.asarray(env_state.p_vel)
    want = np.concatenate([positions[:N].ravel(), velocities[:N].ravel(), positions[N:].ravel()])
    np.testing.assert_array_equal(ts.state, want)
    assert np.abs(velocities[:N]).sum() > 0, "the agents moved, so the state's velocities are tested"
    assert ts.avail_actions.shape == (N, 5) and bool(ts.avail_actions.all())


def test_the_team_reward_is_the_sum_of_jaxmarls_rewards_and_counts_each_collision(env, step):
    # agents 0 and 1 touch (radii 0.15 each), agent 2 alone: jaxmarl's per-agent rewards differ
    env_state = placed(env, jnp.array([[0.0, 0.0], [0.2, 0.0], [0.8, 0.8]]))
    actions = jnp.array([1, 3, 2], jnp.int32)
    key = jax.random.PRNGKey(5)
    _, ts = step(key, env_state, actions)
    _, _, rewards, _, _ = env.mpe.step_env(key, env_state, {a: actions[i] for i, a in enumerate(env.mpe.agents)})
    per_agent = np.array([float(rewards[a]) for a in env.mpe.agents])
    assert per_agent[0] != per_agent[2], "the situation must make jaxmarl's rewards differ"
    np.testing.assert_allclose(float(ts.reward), per_agent.sum(), rtol=1e-6)
    # the sum, term by term: local_ratio 0.5, each touching pair costs both its agents 1. The agents are at
    # rest, so within this step they do not move: the distances after it are those of the placement.
    distance_part = -float(env.nearest_agent_distances(env_state).sum())
    np.testing.assert_allclose(per_agent.sum(), N * 0.5 * distance_part - 0.5 * 2 * 1, rtol=1e-5)
    assert float(ts.info["collisions"]) == 1.0


def test_an_episode_takes_exactly_episode_limit_steps_and_only_the_last_is_truncated(env, step):
    env_state, ts = env.reset(jax.random.PRNGKey(6))
    assert not bool(ts.truncated | ts.terminated) and float(ts.reward) == 0.0
    truncated, terminated = [], []
    key = jax.random.PRNGKey(7)
    for _ in range(env.episode_limit):
        key, act_key, step_key = jax.random.split(key, 3)
        actions = jax.random.randint(act_key, (N,), 0, env.n_actions, jnp.int32)
        env_state, ts = step(step_key, env_state, actions)
        truncated.append(bool(ts.truncated))
        terminated.append(bool(ts.terminated))
    assert truncated == [False] * (env.episode_limit - 1) + [True]
    assert not any(terminated)
    # jaxmarl's own `done` is one step late: still False on step 25, as docs/mpe.md says
    assert not bool(env_state.done) and int(env_state.step) == 25


def test_the_episode_limit_setting_sets_where_the_episode_is_truncated():
    env = make_env(build_config(map="simple_spread", episode_limit=4, agents=2))
    assert (env.n_agents, env.episode_limit, env.obs_dim, env.state_dim) == (2, 4, 12, 12)
    env_state, ts = env.reset(jax.random.PRNGKey(0))
    flags = []
    for t in range(4):
        env_state, ts = env.step(jax.random.PRNGKey(t), env_state, jnp.zeros((2,), jnp.int32))
        flags.append(bool(ts.truncated))
    assert flags == [False, False, False, True]


def test_bad_settings_are_refused_in_one_line():
    from qmix.errors import ConfigError

    for bad, message in (({"agents": 0}, "agents must be at least 1"), ({"episode_limit": 0}, "episode_limit")):
        with pytest.raises(ConfigError, match=message) as error:
            build_config(map="simple_spread", **bad)
        assert "\n" not in str(error.value)


def test_agents_on_the_landmarks_occupy_all_three_without_colliding(env, step):
    _, ts = stand_still(env, step, placed(env, LANDMARKS + 0.5 * OCCUPIED_DISTANCE))
    assert float(ts.info["occupied_landmarks"]) == 3.0
    assert float(ts.info["collisions"]) == 0.0
    np.testing.assert_allclose(float(ts.info["landmark_distance"]), 0.5 * OCCUPIED_DISTANCE * np.sqrt(2), rtol=1e-5)


def test_collisions_count_touching_pairs_and_landmark_measures_see_the_crowd(env, step):
    # all three agents within 0.3 of each other (touching pairwise) near the middle landmark
    crowd = jnp.array([[0.0, 0.75], [0.1, 0.8], [-0.05, 0.85]])
    _, ts = stand_still(env, step, placed(env, crowd))
    assert float(ts.info["collisions"]) == 3.0
    assert float(ts.info["occupied_landmarks"]) == 1.0
    # one landmark covered, the other two at the distance to the crowd's nearest agent
    want = np.mean([float(jnp.linalg.norm(crowd - lm, axis=1).min()) for lm in LANDMARKS])
    np.testing.assert_allclose(float(ts.info["landmark_distance"]), want, rtol=1e-5)


def test_reset_reports_the_same_measures_with_no_collisions_yet(env):
    _, ts = env.reset(jax.random.PRNGKey(0))
    assert set(ts.info) == {m.name for m in env.measures}
    assert float(ts.info["collisions"]) == 0.0 and all(v.shape == () for v in ts.info.values())


def test_stepping_past_the_limit_continues_the_same_episode(env, step):
    env_state, _ = env.reset(jax.random.PRNGKey(8))
    for t in range(env.episode_limit):
        env_state, _ = step(jax.random.PRNGKey(t), env_state, jnp.array([2, 2, 2], jnp.int32))
    after, ts = step(jax.random.PRNGKey(99), env_state, jnp.array([2, 2, 2], jnp.int32))
    assert int(after.step) == env.episode_limit + 1 and bool(ts.truncated)
    # positions move on by the velocity of the step before: no reset put the agents somewhere new
    np.testing.assert_allclose(after.p_pos, env_state.p_pos + env_state.p_vel * env.mpe.dt, rtol=1e-5, atol=1e-6)


# QMIX and VDN train on simple_spread end to end: tests/test_extending.py, from the command line
