"""QPLEX's duplex dueling mixer: the V/A split over available actions by hand, the advantages carrying no
gradient to the utilities, and IGM (the joint greedy action is the agents' own)."""

import itertools
from types import SimpleNamespace

import jax
import jax.numpy as jnp
import numpy as np

from qmix.nets.mixers import MixerInput
from qmix.nets.qplex import make_qplex

SETTINGS = SimpleNamespace(hypernet_embed_dim=8, qplex_heads=2, qplex_adv_hypernet_layers=2,
                           qplex_adv_hypernet_embed=8)
N, A, S = 2, 3, 4
MIXER = make_qplex(SETTINGS)


def example(chosen, all_qs, actions, avail):
    return MixerInput(jnp.asarray(chosen, jnp.float32), jnp.asarray(all_qs, jnp.float32), jnp.asarray(actions),
                      jnp.ones((S,)), jnp.asarray(avail))


def constant_outputs(params, outputs):
    """All weights and biases zero, then each named network's last layer bias set: with zero kernels every
    network outputs that bias whatever its input. outputs: {path: bias}."""
    params = jax.tree.map(jnp.zeros_like, params)
    for path, bias in outputs.items():
        node = params["params"]
        for name in path:
            node = node[name]
        node["Dense_1"]["bias"] = jnp.asarray(bias, jnp.float32)
    return params


def test_v_is_the_best_available_utility_and_q_tot_is_v_plus_weighted_advantages():
    all_qs = [[5.0, 1.0, 3.0], [2.0, 4.0, -1.0]]
    avail = [[False, True, True], [True, True, True]]  # agent 0's best raw utility (5) is unavailable
    actions = [1, 2]
    chosen = [1.0, -1.0]
    x = example(chosen, all_qs, actions, avail)
    params = constant_outputs(MIXER.init(jax.random.PRNGKey(0), x), {
        ("hyper_w",): [2.0, 0.5],  # w_i = |.| > 0
        ("hyper_v",): [1.0, -1.0],  # b_i
        ("attention", "key_0"): [2.0], ("attention", "key_1"): [-6.0],  # |key|: 2 and 6
        # agents_h and action_h stay 0: sigmoid 0.5 each, so lambda_i = (2 + 6) * 0.25 = 2
    })
    # transformed: Q_0 = 2*1 + 1 = 3, V_0 = 2*3 + 1 = 7 (max over available: 3, not 5), A_0 = -4;
    #              Q_1 = 0.5*(-1) - 1 = -1.5, V_1 = 0.5*4 - 1 = 1, A_1 = -2.5
    # Q_tot = (7 + 1) + 2 * (-4) + 2 * (-2.5) = -5
    np.testing.assert_allclose(float(MIXER.apply(params, x)[0]), -5.0, rtol=1e-6)
    # the utilities learn through sum_i Q_i only (the advantages carry no gradient): dQ_tot/dQ_i = w_i
    grads = jax.grad(lambda c: MIXER.apply(params, x.replace(chosen_qs=c))[0])(x.chosen_qs)
    np.testing.assert_allclose(np.asarray(grads), [2.0, 0.5], rtol=1e-6)


def test_the_joint_greedy_action_is_each_agents_best_available_action():
    key = jax.random.PRNGKey(3)
    for _ in range(4):
        key, pkey, qkey, akey, skey = jax.random.split(key, 5)
        utilities = 2.0 * jax.random.normal(qkey, (N, A))
        avail = (jax.random.uniform(akey, (N, A)) < 0.6).at[:, 1].set(True)
        state = jax.random.normal(skey, (S,))
        joint = np.array([u for u in itertools.product(range(A), repeat=N) if all(avail[i, a] for i, a in enumerate(u))])
        chosen = utilities[jnp.arange(N), joint]  # [J, N]
        x = MixerInput(chosen, jnp.broadcast_to(utilities, (len(joint), N, A)), jnp.asarray(joint),
                       jnp.broadcast_to(state, (len(joint), S)), jnp.broadcast_to(avail, (len(joint), N, A)))
        params = MIXER.init(pkey, jax.tree.map(lambda v: v[0], x))
        q_tot = MIXER.apply(params, x)[:, 0]
        best = tuple(joint[int(jnp.argmax(q_tot))])
        assert best == tuple(int(a) for a in jnp.argmax(jnp.where(avail, utilities, -jnp.inf), axis=-1))
