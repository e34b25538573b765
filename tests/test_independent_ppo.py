"""Independent PPO: GAE, the clipped objective, the value loss and the entropy against hand-computed values;
epochs of minibatches; its settings."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from qmix.algorithms.independent_ppo.advantages import gae
from qmix.algorithms.independent_ppo.algorithm import IndependentPPO, Rollout, masked_log_policy
from qmix.config import build_config
from qmix.envs import make_env
from qmix.episodes import EnvSpec
from qmix.errors import ConfigError
from qmix.learn.rollout import run_episodes


def one_episode(terminated_last: bool):
    """B=1, T=3: two real steps (rewards 1, 2), then padding; the second step ends the episode."""
    rewards = jnp.array([[1.0, 2.0, 0.0]])
    filled = jnp.array([[True, True, False]])
    terminated = jnp.array([[False, terminated_last, False]])
    values = jnp.array([[0.5, 1.0, 4.0, 9.0]])[..., None]  # slot 2: the final observation; slot 3: padding
    return rewards, terminated, filled, values


def test_gae_stops_at_a_terminal_step_and_bootstraps_at_a_time_limit():
    gamma, lam = 0.9, 0.5
    # terminated at step 1: delta_1 = 2 - 1 = 1; delta_0 = 1 + 0.9 * 1 - 0.5 = 1.4; A_0 = 1.4 + 0.45 * 1
    advantages = gae(*one_episode(terminated_last=True), gamma, lam)
    np.testing.assert_allclose(np.asarray(advantages[0, :, 0]), [1.85, 1.0, 0.0], rtol=1e-6)
    # cut by the time limit at step 1: delta_1 = 2 + 0.9 * 4 - 1 = 4.6 (the final observation's value)
    advantages = gae(*one_episode(terminated_last=False), gamma, lam)
    np.testing.assert_allclose(np.asarray(advantages[0, :, 0]), [1.4 + 0.45 * 4.6, 4.6, 0.0], rtol=1e-6)


def test_the_policy_is_spread_over_available_actions_only():
    logits = jnp.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
    avail = jnp.array([[True, False, True], [False, False, False]])  # the second: padding, no action
    log_pi = masked_log_policy(logits, avail)
    e1, e3 = np.exp(1.0), np.exp(3.0)
    np.testing.assert_allclose(np.exp(np.asarray(log_pi[0])), [e1 / (e1 + e3), 0.0, e3 / (e1 + e3)], rtol=1e-6)
    np.testing.assert_allclose(np.exp(np.asarray(log_pi[1])), [1 / 3] * 3, rtol=1e-6)


@pytest.fixture(scope="module")
def learner_and_batch():
    config = build_config(alg="ippo", map="two_step", num_envs=4, minibatches=2, agent_hidden_dim=8,
                          critic_hidden_dim=8, normalise_advantages=False)
    spec = EnvSpec.of(make_env(config))
    learner = IndependentPPO(config.algorithm, spec)
    state = learner.init(jax.random.PRNGKey(0))
    env = make_env(config)
    batch, _ = jax.jit(lambda p, k: run_episodes(learner, env, p, k, 4))(
        learner.acting_policy(state, jnp.int32(0)), jax.random.PRNGKey(1))
    return learner, state, batch


def test_at_the_collecting_parameters_the_loss_parts_are_their_textbook_values(learner_and_batch):
    learner, state, batch = learner_and_batch
    rollout = learner.rollout(state.params, batch)
    _, metrics = learner.loss(state.params, batch, rollout)
    log_pi, _ = learner.log_policy_and_values(state.params, batch)
    mask = np.broadcast_to(np.asarray(batch.filled)[..., None], rollout.advantages.shape)
    advantages = np.asarray(rollout.advantages)[mask]
    # ratio 1 everywhere: the surrogate is the mean advantage; returns = A + V, so the value error is A
    np.testing.assert_allclose(float(metrics["policy_loss"]), -advantages.mean(), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(float(metrics["value_loss"]), (advantages**2).mean(), rtol=1e-5)
    p = np.exp(np.asarray(log_pi[:, :-1]))  # two-step: every action available
    entropy = -(p * np.log(p)).sum(-1)[mask].mean()
    np.testing.assert_allclose(float(metrics["entropy"]), entropy, rtol=1e-5)
    assert float(metrics["clip_fraction"]) == 0.0


@pytest.mark.parametrize("sign, factor", [(1.0, 1.2), (-1.0, 1.5)])
def test_the_ratio_is_clipped_only_where_it_would_gain(learner_and_batch, sign, factor):
    """Old log-probabilities 1.5x below the new ones: ratio 1.5. With positive advantages PPO takes the
    clipped 1.2; with negative ones the unclipped 1.5 (the pessimistic bound)."""
    learner, state, batch = learner_and_batch
    log_pi, _ = learner.log_policy_and_values(state.params, batch)
    taken = jnp.take_along_axis(log_pi[:, :-1], batch.actions[..., None], axis=-1)[..., 0]
    advantages = sign * jnp.ones_like(taken)
    rollout = Rollout(taken - jnp.log(1.5), advantages, jnp.zeros_like(taken))
    _, metrics = learner.loss(state.params, batch, rollout)
    np.testing.assert_allclose(float(metrics["policy_loss"]), -sign * factor, rtol=1e-5)
    assert float(metrics["clip_fraction"]) == 1.0


def test_an_update_is_epochs_times_minibatches_gradient_steps(learner_and_batch):
    learner, state, batch = learner_and_batch
    new_state, metrics, steps = jax.jit(learner.update)(state, batch, jax.random.PRNGKey(2))
    assert int(steps) == learner.settings.epochs * learner.settings.minibatches == 8
    assert int(new_state.opt_state[-1][0].count) == 8  # Adam counted every step
    assert all(np.isfinite(float(v)) for v in metrics.values())


def test_minibatches_must_divide_the_iterations_episodes():
    with pytest.raises(ConfigError, match=r"minibatches \(3\) must divide num_envs \(8\)"):
        build_config(alg="ippo", num_envs=8, minibatches=3)


def test_an_on_policy_run_is_not_held_to_the_replay_settings():
    build_config(alg="ippo", num_envs=8, batch_size=64, buffer_size_episodes=4)  # no replay: nothing to refuse
    with pytest.raises(ConfigError, match="larger than the replay"):
        build_config(alg="qmix", num_envs=8, batch_size=64, buffer_size_episodes=4)
