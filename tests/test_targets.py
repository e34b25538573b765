"""TD targets against hand-computed values: termination, truncation, padding, masks, double Q, TD(lambda)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from qmix.algorithms import make_algorithm
from qmix.algorithms.value_decomposition import targets as td
from qmix.config import build_config
from qmix.episodes import EnvSpec, Episodes

f32 = jnp.float32


def test_termination_stops_bootstrapping_and_truncation_bootstraps():
    rewards = jnp.array([[1.0, 2.0], [1.0, 2.0]])
    terminated = jnp.array([[False, True], [False, False]])  # episode 2 ends by the time limit instead
    next_values = jnp.array([[[5.0], [100.0]], [[5.0], [100.0]]])
    y = td.one_step_targets(rewards, terminated, next_values, gamma=0.5)
    np.testing.assert_allclose(np.asarray(y[..., 0]), [[3.5, 2.0], [3.5, 52.0]])


def test_padding_adds_nothing_to_the_loss():
    q = jnp.array([[[1.0], [2.0], [123.0]]])
    y = jnp.array([[[0.0], [4.0], [-999.0]]])  # the padded step has a huge error
    filled = jnp.array([[True, True, False]])
    loss = td.masked_td_loss(q, y, filled)
    np.testing.assert_allclose(float(loss), (1.0**2 + 2.0**2) / 2)


def test_unavailable_actions_are_never_the_max():
    q = jnp.array([1.0, 5.0, 3.0])
    avail = jnp.array([True, False, True])
    assert float(td.masked_max(q, avail)) == 3.0
    assert int(td.masked_argmax(q, avail)) == 2
    # no action available (padding): a finite zero, never -inf
    assert float(td.masked_max(q, jnp.zeros(3, bool))) == 0.0
    assert float(td.next_agent_values(q, q, jnp.zeros(3, bool), double_q=True)) == 0.0


def test_double_q_takes_the_online_argmax_and_the_target_value():
    online = jnp.array([1.0, 3.0, 2.0])
    target = jnp.array([10.0, 0.0, 7.0])
    everything = jnp.ones(3, bool)
    assert float(td.next_agent_values(target, online, everything, double_q=True)) == 0.0  # online picks 1
    assert float(td.next_agent_values(target, online, everything, double_q=False)) == 10.0  # plain max
    no_middle = jnp.array([True, False, True])
    assert float(td.next_agent_values(target, online, no_middle, double_q=True)) == 7.0  # online picks 2


def test_td_lambda_zero_is_the_one_step_target():
    key = jax.random.PRNGKey(0)
    rewards = jax.random.normal(key, (3, 5))
    next_values = jax.random.normal(jax.random.PRNGKey(1), (3, 5, 1))
    terminated = jnp.array([[0, 0, 0, 0, 1], [0, 0, 1, 0, 0], [0, 0, 0, 0, 0]], bool)
    filled = jnp.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], bool)
    lam0 = td.lambda_targets(rewards, terminated, filled, next_values, 0.9, 0.0)
    one = td.one_step_targets(rewards, terminated, next_values, 0.9)
    np.testing.assert_allclose(np.asarray(lam0), np.asarray(one), rtol=1e-6)


def test_td_lambda_one_is_the_monte_carlo_return_on_complete_episodes():
    rewards = jnp.array([[1.0, 2.0, 3.0, 0.0, 0.0]])
    terminated = jnp.array([[False, False, True, False, False]])
    filled = jnp.array([[True, True, True, False, False]])
    next_values = jnp.full((1, 5, 1), 50.0)  # must not leak in anywhere
    g = td.lambda_targets(rewards, terminated, filled, next_values, 0.9, 1.0)
    np.testing.assert_allclose(np.asarray(g[0, :3, 0]), [1 + 0.9 * 2 + 0.81 * 3, 2 + 0.9 * 3, 3.0], rtol=1e-6)


def test_td_lambda_by_hand_with_a_truncated_end():
    # gamma 1, lambda 0.5; the episode is cut by the time limit after step 1, so it bootstraps there.
    rewards = jnp.array([[1.0, 2.0]])
    next_values = jnp.array([[[4.0], [6.0]]])
    g = td.lambda_targets(rewards, jnp.zeros((1, 2), bool), jnp.ones((1, 2), bool), next_values, 1.0, 0.5)
    # G1 = 2 + 6 = 8; G0 = 1 + (0.5 * 4 + 0.5 * 8) = 7
    np.testing.assert_allclose(np.asarray(g[0, :, 0]), [7.0, 8.0])


SPEC = EnvSpec(n_agents=2, n_actions=3, obs_dim=4, state_dim=5, episode_limit=4)


def random_episodes(key, batch=3):
    T, N, A = SPEC.episode_limit, SPEC.n_agents, SPEC.n_actions
    keys = jax.random.split(key, 4)
    avail = jax.random.uniform(keys[0], (batch, T + 1, N, A)) < 0.7
    avail = avail.at[..., 0].set(True)  # at least one action each
    filled = jnp.array([[1, 1, 1, 1], [1, 1, 0, 0], [1, 1, 1, 0]], bool)[:batch]
    terminated = jnp.array([[0, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0]], bool)[:batch]
    return Episodes(
        obs=jax.random.normal(keys[1], (batch, T + 1, N, SPEC.obs_dim)),
        state=jax.random.normal(keys[2], (batch, T + 1, SPEC.state_dim)),
        avail=avail,
        actions=jnp.zeros((batch, T, N), jnp.int32),
        rewards=jax.random.normal(keys[3], (batch, T)),
        terminated=terminated,
        truncated=jnp.zeros((batch, T), bool).at[0, 3].set(True),
        filled=filled,
    )


@pytest.mark.parametrize("double_q, reward_scale", [(True, 1.0), (False, 0.5)])
def test_learner_loss_aligns_t_and_t_plus_1(double_q, reward_scale):
    """The learner's loss equals a step-by-step recomputation with numpy (VDN, so mixing is a sum); the
    targets take the reward times reward_scale."""
    config = build_config(alg="vdn", double_q=double_q, gamma=0.9, agent_hidden_dim=8, reward_scale=reward_scale)
    learner = make_algorithm(config, SPEC)
    state = learner.init(jax.random.PRNGKey(0))
    target = learner.init(jax.random.PRNGKey(1)).params  # a different target network
    batch = random_episodes(jax.random.PRNGKey(2))
    loss, _ = learner.loss(state.params, target, batch)

    q = np.asarray(learner.unroll(state.params.agent, batch))  # [B, T+1, N, A]
    tq = np.asarray(learner.unroll(target.agent, batch))
    avail, b = np.asarray(batch.avail), jax.device_get(batch)
    errors = []
    for i in range(3):
        for t in range(SPEC.episode_limit):
            if not b.filled[i, t]:
                continue
            q_tot = sum(q[i, t, a, b.actions[i, t, a]] for a in range(2))
            next_value = 0.0
            for a in range(2):
                masked_online = np.where(avail[i, t + 1, a], q[i, t + 1, a], -np.inf)
                masked_target = np.where(avail[i, t + 1, a], tq[i, t + 1, a], -np.inf)
                next_value += tq[i, t + 1, a, masked_online.argmax()] if double_q else masked_target.max()
            y = reward_scale * b.rewards[i, t] + 0.9 * (1.0 - b.terminated[i, t]) * next_value
            errors.append((q_tot - y) ** 2)
    np.testing.assert_allclose(float(loss), np.mean(errors), rtol=1e-5)


def test_rnn_starts_every_episode_from_a_zero_hidden_state():
    config = build_config(alg="vdn", agent_hidden_dim=8)
    learner = make_algorithm(config, SPEC)
    params = learner.init(jax.random.PRNGKey(0)).params.agent
    batch = random_episodes(jax.random.PRNGKey(3))
    q = learner.unroll(params, batch)
    no_action = -jnp.ones((3, SPEC.n_agents), jnp.int32)
    _, q0 = learner.agent_values(params, learner.initial_hidden(3), batch.obs[:, 0], no_action)
    np.testing.assert_allclose(np.asarray(q[:, 0]), np.asarray(q0), rtol=1e-6)
    # each episode's values depend on its own history only
    q_first = learner.unroll(params, jax.tree.map(lambda x: x[:1], batch))
    np.testing.assert_allclose(np.asarray(q[:1]), np.asarray(q_first), rtol=1e-5, atol=1e-6)
