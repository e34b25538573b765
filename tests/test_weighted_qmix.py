"""Weighted QMIX: the CW and OW weights on hand-made cases, and its loss recomputed step by step (Q-hat*'s
target at the online QMIX agents' greedy joint action, both losses over real steps only)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from qmix.algorithms import make_algorithm
from qmix.algorithms.weighted_qmix.weights import central_weights, optimistic_weights
from qmix.config import build_config
from qmix.nets.mixers import MixerInput
from test_targets import SPEC, random_episodes

ALPHA = 0.1


def test_optimistic_weights_favour_underestimates():
    q_tot = jnp.array([[[1.0], [2.0], [3.0]]])  # [B=1, T=3, 1]
    y = jnp.array([[[2.0], [2.0], [1.0]]])  # under, equal, over
    np.testing.assert_allclose(optimistic_weights(q_tot, y, ALPHA)[0, :, 0], [1.0, ALPHA, ALPHA])


def test_central_weights_favour_the_greedy_action_and_targets_above_its_value():
    actions = jnp.array([[[0, 1], [0, 1], [2, 1], [2, 1]]])  # [B=1, T=4, N=2]
    greedy = jnp.array([[[0, 1], [0, 2], [0, 1], [0, 1]]])  # step 0: taken is greedy; others: not
    y = jnp.array([[[-5.0], [3.0], [3.0], [1.0]]])
    greedy_value = jnp.array([[[0.0], [2.0], [3.0], [4.0]]])
    # step 0: greedy taken (y below its value, still 1); step 1: y 3 > 2 (1); step 2: y = value (alpha);
    # step 3: y 1 < 4 (alpha)
    w = central_weights(actions, greedy, y, greedy_value, ALPHA)
    np.testing.assert_allclose(w[0, :, 0], [1.0, 1.0, ALPHA, ALPHA])


@pytest.mark.parametrize("alg", ["cw_qmix", "ow_qmix"])
def test_the_loss_is_the_weighted_qmix_loss_plus_q_hat_stars(alg):
    config = build_config(alg=alg, gamma=0.9, agent_hidden_dim=8, mixing_embed_dim=4, hypernet_embed_dim=8,
                          central_agent_hidden_dim=8, central_mixing_embed_dim=16, weighting_alpha=ALPHA)
    learner = make_algorithm(config, SPEC)
    params = learner.init(jax.random.PRNGKey(0)).params
    target = learner.init(jax.random.PRNGKey(1)).params  # a different target network
    batch = random_episodes(jax.random.PRNGKey(2))
    batch = batch.replace(actions=jax.random.randint(jax.random.PRNGKey(3), batch.actions.shape, 0, SPEC.n_actions))
    loss, metrics = learner.loss(params, target, batch)

    q = np.asarray(learner.unroll(params.agent, batch))  # QMIX's agents, online: [B, T+1, N, A]
    cq = np.asarray(learner.unroll(params.central_agent, batch, learner.central_agent))
    tcq = np.asarray(learner.unroll(target.central_agent, batch, learner.central_agent))
    b, avail = jax.device_get(batch), np.asarray(batch.avail)
    agents = np.arange(SPEC.n_agents)

    def mix(module, mixer_params, utilities, actions, i, t):
        x = MixerInput(jnp.asarray(utilities), jnp.zeros((SPEC.n_agents, SPEC.n_actions)), jnp.asarray(actions),
                       b.state[i, t], avail[i, t])
        return float(module.apply(mixer_params, x)[0])

    def greedy(i, t):  # the online QMIX agents' best available actions: Q-hat*'s argmax source
        return np.where(avail[i, t], q[i, t], -np.inf).argmax(axis=-1)

    def central_target_value(i, t):
        u = greedy(i, t)
        return mix(learner.central_mixer, target.central_mixer, tcq[i, t, agents, u], u, i, t)

    qmix_errors, central_errors, steps = 0.0, 0.0, 0
    for i in range(3):
        for t in range(SPEC.episode_limit):
            if not b.filled[i, t]:
                continue
            steps += 1
            u = b.actions[i, t]
            y = b.rewards[i, t] + 0.9 * (1.0 - b.terminated[i, t]) * central_target_value(i, t + 1)
            q_tot = mix(learner.mixer, params.mixer, q[i, t, agents, u], u, i, t)
            central = mix(learner.central_mixer, params.central_mixer, cq[i, t, agents, u], u, i, t)
            if alg == "ow_qmix":
                w = 1.0 if q_tot < y else ALPHA
            else:
                w = 1.0 if (u == greedy(i, t)).all() or y > central_target_value(i, t) else ALPHA
            qmix_errors += w * (q_tot - y) ** 2
            central_errors += (central - y) ** 2
    np.testing.assert_allclose(float(metrics["qmix_loss"]), qmix_errors / steps, rtol=1e-4)
    np.testing.assert_allclose(float(metrics["central_loss"]), central_errors / steps, rtol=1e-4)
    np.testing.assert_allclose(float(loss), (qmix_errors + central_errors) / steps, rtol=1e-4)
    assert 0 < float(metrics["weight_mean"]) <= 1


def test_q_hat_star_bootstraps_from_qmix_greedy_action_not_its_own():
    """The targets' joint action comes from the online QMIX agents: with Q-hat*'s own argmax elsewhere, the
    bootstrap value differs from Q-hat*'s max."""
    config = build_config(alg="cw_qmix", agent_hidden_dim=8, central_agent_hidden_dim=8, central_mixing_embed_dim=16)
    learner = make_algorithm(config, SPEC)
    params = learner.init(jax.random.PRNGKey(0)).params
    batch = random_episodes(jax.random.PRNGKey(2))
    values = learner.chosen_values(params, params, batch)
    online = np.asarray(learner.unroll(params.agent, batch))
    expected = np.where(np.asarray(batch.avail), online, -np.inf).argmax(axis=-1)
    np.testing.assert_array_equal(np.asarray(values.greedy_actions), expected)
    own = np.where(np.asarray(batch.avail), np.asarray(learner.unroll(params.central_agent, batch, learner.central_agent)),
                   -np.inf).argmax(axis=-1)
    assert (own != expected).any(), "a case where Q-hat*'s own agents would pick differently"
