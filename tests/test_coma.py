"""COMA: the epsilon-floored policy, the critic's inputs, its TD(lambda) targets and the counterfactual
baseline against hand-computed values; the update's gradients and step counts; the target copies; the
settings; and a short run that learns."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from qmix.algorithms.coma.algorithm import COMA, floored_log_policy
from qmix.algorithms.coma.critic import (
    counterfactual_advantages,
    critic_input_dim,
    critic_inputs,
    critic_targets,
    slot_actions,
)
from qmix.algorithms.coma.settings import COMASettings
from qmix.build import make_trainer
from qmix.config import build_config
from qmix.episodes import EnvSpec, Episodes, previous_actions
from qmix.errors import ConfigError
from qmix.learn.loop import seed_keys


def test_the_floored_policy_spreads_epsilon_over_available_actions_only():
    logits = jnp.array([[1.0, 2.0, 3.0], [0.0, 5.0, 0.0]])
    avail = jnp.array([[True, False, True], [False, False, False]])  # the second: padding, no action
    pi = np.exp(np.asarray(floored_log_policy(logits, avail, jnp.float32(0.2))))
    p1, p3 = np.exp(1.0) / (np.exp(1.0) + np.exp(3.0)), np.exp(3.0) / (np.exp(1.0) + np.exp(3.0))
    # (1 - 0.2) * softmax over the available actions + 0.2 / 2 on each of them, 0 on the unavailable one
    np.testing.assert_allclose(pi[0], [0.8 * p1 + 0.1, 0.0, 0.8 * p3 + 0.1], rtol=1e-6)
    assert pi[0].sum() == pytest.approx(1.0, abs=1e-6) and pi[0][[0, 2]].min() >= 0.1  # the floor: eps / 2
    softmax = np.exp([0.0, 5.0, 0.0]) / np.exp([0.0, 5.0, 0.0]).sum()
    np.testing.assert_allclose(pi[1], 0.8 * softmax + 0.2 / 3, rtol=1e-6)  # padding: finite, over every action
    assert pi[1].sum() == pytest.approx(1.0, abs=1e-6)
    for epsilon in (0.0, 1.0):  # the ends of the anneal: finite values and gradients
        grads = jax.grad(lambda x, e=epsilon: floored_log_policy(x, avail, jnp.float32(e))[0, 2])(logits)
        assert np.isfinite(np.asarray(grads)).all()
    np.testing.assert_allclose(np.exp(np.asarray(floored_log_policy(logits, avail, jnp.float32(1.0))[0])),
                               [0.5, 0.0, 0.5], rtol=1e-6)


def test_the_counterfactual_baseline_weighs_each_own_action_by_the_policy():
    """2 agents, 3 actions; agent 1's third action is unavailable (pi 0 there, its Q ignored). Row a of q is
    Q(s, (u_-a, u')) for u' = 0, 1, 2 with the other agent's taken action fixed."""
    q = jnp.array([[1.0, 3.0, 100.0],  # agent 1 (its third action unavailable: any value)
                   [2.0, -1.0, 4.0]])  # agent 2
    pi = jnp.array([[0.25, 0.75, 0.0],
                    [0.2, 0.3, 0.5]])
    actions = jnp.array([1, 0])
    advantages, baselines = counterfactual_advantages(q, pi, actions)
    # agent 1: b = 0.25 * 1 + 0.75 * 3 = 2.5, A = Q(taken = 1) - b = 3 - 2.5 = 0.5
    # agent 2: b = 0.2 * 2 + 0.3 * (-1) + 0.5 * 4 = 2.1, A = Q(taken = 0) - b = 2 - 2.1 = -0.1
    np.testing.assert_allclose(np.asarray(baselines), [2.5, 2.1], rtol=1e-6)
    np.testing.assert_allclose(np.asarray(advantages), [0.5, -0.1], rtol=1e-5)


def test_the_critic_sees_the_others_actions_with_its_own_zeroed():
    """N=3, A=2, S=1, O=1: actions (0, 1, 1), previous actions (none, 0, 1)."""
    state, obs = jnp.array([7.0]), jnp.array([[1.0], [2.0], [3.0]])
    actions, last = jnp.array([0, 1, 1]), jnp.array([-1, 0, 1])
    inputs = np.asarray(critic_inputs(state, obs, actions, last, 2))
    assert inputs.shape == (3, critic_input_dim(1, 1, 3, 2)) == (3, 17)
    last_block = [0, 0, 1, 0, 0, 1]  # every agent's previous action, the same for everyone
    #                state obs  actions one-hot, own zeroed   previous actions  agent id
    np.testing.assert_array_equal(inputs[0], [7, 1, 0, 0, 0, 1, 0, 1, *last_block, 1, 0, 0])
    np.testing.assert_array_equal(inputs[1], [7, 2, 1, 0, 0, 0, 0, 1, *last_block, 0, 1, 0])
    np.testing.assert_array_equal(inputs[2], [7, 3, 1, 0, 0, 1, 0, 0, *last_block, 0, 0, 1])
    # over episodes and slots: [B, T+1, N, D]
    batched = critic_inputs(jnp.zeros((2, 4, 1)), jnp.zeros((2, 4, 3, 1)), jnp.zeros((2, 4, 3), jnp.int32),
                            -jnp.ones((2, 4, 3), jnp.int32), 2)
    assert batched.shape == (2, 4, 3, 17)


def test_the_critic_targets_stop_at_a_termination_and_bootstrap_at_a_time_limit():
    """B=2, T=3, N=1, A=2, gamma 0.9, lambda 0.5. Episode 1 ends at step 1 (terminated); episode 2 is cut by
    the time limit at step 2 and bootstraps from slot 3, where the action drawn from the policy (1) is
    valued. target_q[b, slot, 0] = (value of action 0, value of action 1)."""
    target_q = jnp.array([
        [[-9.0, -9.0], [-9.0, 4.0], [-9.0, 9.0], [100.0, 100.0]],  # slot 2: terminated before it, unused
        [[-9.0, -9.0], [-9.0, 2.0], [6.0, -9.0], [-50.0, 10.0]],
    ])[:, :, None, :]
    actions = jnp.array([[0, 1, 0], [0, 1, 0]])[..., None]  # [B, T, N]; episode 1's third step is padding
    filled = jnp.array([[True, True, False], [True, True, True]])
    drawn = jnp.array([[1, 0, 1, 0], [0, 0, 0, 1]])[..., None]  # [B, T+1, N]: policy draws in every slot
    joint = slot_actions(actions, filled, drawn)
    # taken where a step was taken, drawn elsewhere (episode 1's slots 2, 3; episode 2's slot 3)
    np.testing.assert_array_equal(np.asarray(joint[..., 0]), [[0, 1, 1, 0], [0, 1, 0, 1]])
    rewards = jnp.array([[1.0, 2.0, 0.0], [1.0, 0.0, 3.0]])
    terminated = jnp.array([[False, True, False], [False, False, False]])
    targets = np.asarray(critic_targets(target_q, joint, rewards, terminated, filled, 0.9, 0.5))[..., 0]
    # episode 1: G_1 = 2 (terminated); G_0 = 1 + 0.9 * (0.5 * Q_1 + 0.5 * G_1) = 1 + 0.9 * (2 + 1) = 3.7
    np.testing.assert_allclose(targets[0, :2], [3.7, 2.0], rtol=1e-6)
    # episode 2: G_2 = 3 + 0.9 * Q_3 = 3 + 9 = 12; G_1 = 0.9 * (0.5 * 6 + 0.5 * 12) = 8.1;
    # G_0 = 1 + 0.9 * (0.5 * 2 + 0.5 * 8.1) = 5.545
    np.testing.assert_allclose(targets[1], [5.545, 8.1, 12.0], rtol=1e-6)


# ----- the update, on a one-step coordination game: reward 1 when both agents play 1, else 0 -----
BANDIT = EnvSpec(n_agents=2, n_actions=2, obs_dim=1, state_dim=1, episode_limit=2)
PAYOFF = np.array([[0.0, 0.0], [0.0, 1.0]])


def bandit_batch() -> Episodes:
    """The four joint actions, one episode each of one step (terminated), padded to T=2."""
    joint = jnp.array([[0, 0], [0, 1], [1, 0], [1, 1]])
    empty = Episodes.empty(BANDIT, 4)
    return empty.replace(
        avail=empty.avail.at[:, :2].set(True),
        actions=empty.actions.at[:, 0].set(joint),
        rewards=empty.rewards.at[:, 0].set(jnp.asarray(PAYOFF)[joint[:, 0], joint[:, 1]]),
        terminated=empty.terminated.at[:, 0].set(True),
        filled=empty.filled.at[:, 0].set(True),
    )


@functools.cache
def bandit_learner(critic_update: str):
    """A learner (feed-forward actor, small networks, large steps), its first state and its compiled update."""
    settings = COMASettings(agent="ff", agent_hidden_dim=8, critic_hidden_dim=16, lr=0.01, critic_lr=0.01,
                            critic_update=critic_update)
    learner = COMA(settings, BANDIT)
    return learner, jax.jit(learner.init)(jax.random.PRNGKey(0)), jax.jit(learner.update)


@pytest.fixture(params=["batched", "sequential"])
def bandit(request):
    return bandit_learner(request.param)


def test_the_actor_gradient_is_the_policy_gradient_of_the_advantages_before_the_critic_step(bandit):
    learner, state, update = bandit
    batch = bandit_batch()
    _, metrics, _ = update(state, batch, jax.random.PRNGKey(1))

    @jax.jit
    def by_hand(state):
        """-mean of A log pi(taken) over the four real steps, A from the critic before its step."""
        epsilon = learner.epsilon(state.env_steps)
        taken = jnp.pad(batch.actions, ((0, 0), (0, 1), (0, 0)))  # every step real: no drawn action is read
        inputs = critic_inputs(batch.state, batch.obs, taken, previous_actions(batch), 2)
        q = learner.critic.apply(state.params.critic, inputs)[:, :1]
        pi = jnp.exp(learner.log_policy(state.params.actor, batch, epsilon))[:, :1]
        advantages, _ = counterfactual_advantages(q, pi, batch.actions[:, :1])  # [4, 1, 2]

        def loss(actor):
            log_pi = learner.log_policy(actor, batch, epsilon)[:, :1]
            return -(advantages * jnp.take_along_axis(log_pi, batch.actions[:, :1, :, None], -1)[..., 0]).mean()

        value, grads = jax.value_and_grad(loss)(state.params.actor)
        return advantages.mean(), value, optax.global_norm(grads)

    advantage_mean, actor_loss, grad_norm = by_hand(state)
    np.testing.assert_allclose(float(metrics["advantage_mean"]), float(advantage_mean), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(float(metrics["actor_loss"]), float(actor_loss), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(float(metrics["actor_grad_norm"]), float(grad_norm), rtol=1e-5)


def test_an_update_counts_every_optimiser_step(bandit):
    learner, state, update = bandit
    batch = bandit_batch()
    new_state, metrics, steps = update(state, batch, jax.random.PRNGKey(1))
    assert int(steps) == 2  # one critic step (batched; sequential: one real time step), one actor step
    assert all(np.isfinite(float(v)) for v in metrics.values()) and {"critic_loss", "actor_loss",
                                                                      "advantage_mean"} <= set(metrics)
    assert int(new_state.env_steps) == 4  # the next batch's epsilon follows from the steps learned from
    longer = batch.replace(filled=batch.filled.at[0, 1].set(True), terminated=batch.terminated.at[0].set(
        jnp.array([False, True])))  # the first episode now takes two steps
    _, _, steps = update(state, longer, jax.random.PRNGKey(1))
    assert int(steps) == (2 if learner.settings.critic_update == "batched" else 3)


def test_the_policy_learns_to_coordinate_on_the_bandit(bandit):
    learner, state, update = bandit
    batch = bandit_batch()

    def p_best(state):  # the policy without its floor: each agent's probability of action 1
        return np.exp(np.asarray(learner.log_policy(state.params.actor, batch, jnp.float32(0.0))[0, 0, :, 1]))

    before = p_best(state)
    for k in range(30):
        state, _, _ = update(state, batch, jax.random.PRNGKey(k))
    after = p_best(state)
    assert (after > before + 0.1).all(), (before, after)


def test_the_target_critic_is_copied_every_interval_of_episodes():
    learner, state, _ = bandit_learner("batched")
    moved = state.replace(params=state.params.replace(critic=jax.tree.map(lambda x: x + 1.0, state.params.critic)))
    kept = learner.after_iteration(moved, jnp.int32(199))
    assert jax.tree.all(jax.tree.map(lambda a, b: bool((a == b).all()), kept.target_critic, state.target_critic))
    copied = learner.after_iteration(moved, jnp.int32(200))
    assert jax.tree.all(jax.tree.map(lambda a, b: bool((a == b).all()), copied.target_critic,
                                     moved.params.critic))
    assert int(copied.last_target_update_episode) == 200 and int(kept.last_target_update_episode) == 0


def test_the_settings_refuse_bad_values_in_one_line():
    assert build_config(alg="coma").algorithm.epsilon_start == 0.5  # the authors' floor, not a preset's
    for key, value, message in [("td_lambda", 1.5, r"td_lambda must be in \[0, 1\], got 1.5"),
                                ("critic_lr", 0.0, "critic_lr must be a positive, finite number, got 0.0"),
                                ("critic_hidden_dim", 0, "critic_hidden_dim must be at least 1, got 0"),
                                ("critic_update", "stepwise", "critic_update must be one of batched, sequential")]:
        with pytest.raises(ConfigError, match=message):
            build_config(alg="coma", **{key: value})


@pytest.mark.slow  # a training loop's compile; the maths is checked by hand above
def test_coma_learns_the_two_step_game():
    """4 seeds x 400 episodes (8 at a time, the floor annealed over the first 200). Random play returns 4.75
    on average; every run ends on a greedy return of 7 or 8 and explores better than it started."""
    seeds = 4
    config = build_config(preset="two_step", alg="coma", num_seeds=seeds, num_envs=8, env_steps=800,
                          epsilon_anneal_env_steps=400)
    trainer = make_trainer(config)
    runners = trainer.init_runs(seed_keys(0, seeds))
    returns = []
    for budget in (200, 800):  # the first 100 episodes, then the rest
        runners, totals = trainer.train_runs_until(runners, np.full(seeds, budget, np.int32),
                                                   np.full(seeds, budget, np.int32))
        returns.append(np.asarray(totals["train_return"]) / np.asarray(totals["episodes"]))
    greedy = trainer.evaluate_runs(runners.alg, seed_keys(7, seeds))[""]["test_return"]
    assert (np.asarray(greedy) >= 7.0).all(), greedy
    assert (returns[1] > returns[0] + 0.5).all(), returns
