"""The mixer family: monotonicity, consistency of argmaxes (IGM), and each ablation's defining property."""

import itertools
from types import SimpleNamespace

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from qmix.nets.mixers import MIXERS, MixerInput, mixer_outputs

# every registered mixer that declares itself monotonic and mixes into one Q_tot
MONOTONIC = [e.name for e in MIXERS if e.monotonic and not e.facts.get("per_agent", False)]
STATE_DIM = 6


def mixer_input(chosen_qs, state):
    """Only the chosen utilities and the state (one action per agent, action 0, the only one available)."""
    return MixerInput(chosen_qs, chosen_qs[..., None], jnp.zeros(chosen_qs.shape, jnp.int32), state,
                      jnp.ones((*chosen_qs.shape, 1), bool))


class Mixer:
    """A registered mixer applied to (chosen utilities, state)."""

    def __init__(self, module):
        self.module = module

    def apply(self, params, chosen_qs, state):
        return self.module.apply(params, mixer_input(chosen_qs, state))


def init_mixer(name, n_agents, key, layers=2):
    settings = SimpleNamespace(mixing_embed_dim=8, hypernet_layers=layers, hypernet_embed_dim=16)
    module = MIXERS.get(name)(settings)
    params = module.init(key, mixer_input(jnp.zeros((n_agents,)), jnp.zeros((STATE_DIM,))))
    return Mixer(module), params


def test_registry_has_every_mixer():
    assert MIXERS.names() == ["qmix", "vdn", "none", "qmix_ns", "qmix_lin", "vdn_s", "qplex"]
    assert mixer_outputs("none", 4) == 4 and mixer_outputs("qmix", 4) == 1
    assert set(MONOTONIC) == {"vdn", "vdn_s", "qmix", "qmix_ns", "qmix_lin"}


@pytest.mark.parametrize("name", MONOTONIC)
@pytest.mark.parametrize("layers", [1, 2])
def test_monotonic_in_every_agent_utility(name, layers):
    key = jax.random.PRNGKey(0)
    for trial in range(5):
        key, pkey, qkey, skey = jax.random.split(key, 4)
        n_agents = 2 + trial % 4
        mixer, params = init_mixer(name, n_agents, pkey, layers)
        qs = 5.0 * jax.random.normal(qkey, (64, n_agents))
        states = 3.0 * jax.random.normal(skey, (64, STATE_DIM))
        grads = jax.vmap(jax.grad(lambda q, s, p=params, m=mixer: m.apply(p, q, s)[0]))(qs, states)
        assert grads.shape == (64, n_agents)
        assert bool((grads >= 0).all()), f"{name}: negative dQ_tot/dQ_a {float(grads.min())}"


@pytest.mark.parametrize("name", MONOTONIC)
def test_argmax_of_q_tot_is_the_tuple_of_agent_argmaxes(name):
    key = jax.random.PRNGKey(1)
    for n_agents, n_actions in [(2, 3), (2, 5), (3, 3), (3, 4)]:
        for _ in range(3):
            key, pkey, qkey, skey = jax.random.split(key, 4)
            mixer, params = init_mixer(name, n_agents, pkey)
            utilities = 2.0 * jax.random.normal(qkey, (n_agents, n_actions))  # [N, A]
            state = jax.random.normal(skey, (STATE_DIM,))
            joint = np.array(list(itertools.product(range(n_actions), repeat=n_agents)))  # [A^N, N]
            chosen = utilities[jnp.arange(n_agents), joint]  # [A^N, N]
            q_tot = mixer.apply(params, chosen, jnp.broadcast_to(state, (len(joint), STATE_DIM)))[:, 0]
            best_joint = tuple(joint[int(jnp.argmax(q_tot))])
            assert best_joint == tuple(int(a) for a in jnp.argmax(utilities, axis=-1))


def test_vdn_is_exactly_the_sum():
    mixer, params = init_mixer("vdn", 3, jax.random.PRNGKey(0))
    qs = jnp.array([[1.0, -2.0, 0.5], [3.0, 3.0, 3.0]])
    out = mixer.apply(params, qs, jnp.ones((2, STATE_DIM)))
    np.testing.assert_array_equal(np.asarray(out[:, 0]), [-0.5, 9.0])


def test_iql_returns_each_agent_utility():
    mixer, params = init_mixer("none", 3, jax.random.PRNGKey(0))
    qs = jnp.array([[1.0, -2.0, 0.5]])
    np.testing.assert_array_equal(np.asarray(mixer.apply(params, qs, jnp.ones((1, STATE_DIM)))), np.asarray(qs))


def test_vdn_s_is_the_sum_plus_a_state_value():
    mixer, params = init_mixer("vdn_s", 3, jax.random.PRNGKey(0))
    state = jax.random.normal(jax.random.PRNGKey(3), (STATE_DIM,))
    a = mixer.apply(params, jnp.array([1.0, 2.0, 3.0]), state)
    b = mixer.apply(params, jnp.array([0.0, 0.0, 0.0]), state)
    np.testing.assert_allclose(np.asarray(a - b), [6.0], rtol=1e-6)


def test_qmix_ns_ignores_the_state():
    mixer, params = init_mixer("qmix_ns", 3, jax.random.PRNGKey(0))
    qs = jnp.array([0.3, -1.0, 2.0])
    a = mixer.apply(params, qs, jnp.zeros((STATE_DIM,)))
    b = mixer.apply(params, qs, 10.0 * jax.random.normal(jax.random.PRNGKey(5), (STATE_DIM,)))
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_qmix_uses_the_state():
    mixer, params = init_mixer("qmix", 3, jax.random.PRNGKey(0))
    qs = jnp.array([0.3, -1.0, 2.0])
    a = mixer.apply(params, qs, jnp.zeros((STATE_DIM,)))
    b = mixer.apply(params, qs, jnp.ones((STATE_DIM,)))
    assert not np.allclose(np.asarray(a), np.asarray(b))


def test_qmix_lin_is_linear_in_the_utilities():
    mixer, params = init_mixer("qmix_lin", 3, jax.random.PRNGKey(0))
    state = jax.random.normal(jax.random.PRNGKey(2), (STATE_DIM,))
    f = lambda q: mixer.apply(params, q, state)[0]  # noqa: E731
    x, y = jnp.array([1.0, -2.0, 0.5]), jnp.array([0.2, 4.0, -3.0])
    # affine: f(a x + b y) = a f(x) + b f(y) + (1 - a - b) f(0)
    lhs = f(2.0 * x - 3.0 * y)
    rhs = 2.0 * f(x) - 3.0 * f(y) + 2.0 * f(jnp.zeros(3))
    np.testing.assert_allclose(float(lhs), float(rhs), rtol=1e-5, atol=1e-5)
    # ... while QMIX, with its ELU hidden layer, is not
    mixer_q, params_q = init_mixer("qmix", 3, jax.random.PRNGKey(0))
    g = lambda q: mixer_q.apply(params_q, q, state)[0]  # noqa: E731
    assert abs(float(g(2.0 * x - 3.0 * y) - (2.0 * g(x) - 3.0 * g(y) + 2.0 * g(jnp.zeros(3))))) > 1e-3


def test_state_last_action_appends_every_agents_previous_action_one_hot():
    from qmix.algorithms import make_algorithm
    from qmix.config import ConfigError, build_config
    from qmix.episodes import EnvSpec, Episodes

    spec = EnvSpec(n_agents=2, n_actions=3, obs_dim=1, state_dim=2, episode_limit=2)
    state = jnp.array([[[10.0, 11.0], [20.0, 21.0], [30.0, 31.0]]])  # [B=1, T+1=3, S=2]
    episodes = Episodes(
        obs=jnp.zeros((1, 3, 2, 1)), state=state, avail=jnp.ones((1, 3, 2, 3), bool),
        actions=jnp.array([[[2, 0], [1, 1]]]),  # step 0: agent 0 took 2, agent 1 took 0; step 1: both 1
        rewards=jnp.zeros((1, 2)), terminated=jnp.array([[False, True]]), truncated=jnp.zeros((1, 2), bool),
        filled=jnp.ones((1, 2), bool),
    )
    learner = make_algorithm(build_config(preset="default", state_last_action=True), spec)
    # By hand: slot 0 has no previous action; slot t holds the one-hot actions of step t-1, agent by agent
    np.testing.assert_array_equal(np.asarray(learner.mixer_states(episodes)), [[
        [10, 11, 0, 0, 0, 0, 0, 0],
        [20, 21, 0, 0, 1, 1, 0, 0],
        [30, 31, 0, 1, 0, 0, 1, 0],
    ]])
    params = learner.init(jax.random.PRNGKey(0)).params
    loss, _ = learner.loss(params, params, episodes)  # the mixer takes the wider state
    assert np.isfinite(float(loss))
    plain = make_algorithm(build_config(preset="default"), spec)
    assert plain.mixer_states(episodes) is episodes.state  # off (the default): the bare state, as before
    with pytest.raises(ConfigError, match="state_last_action is for the StarCraft maps"):
        build_config(preset="two_step", state_last_action=True)
    with pytest.raises(ConfigError, match="backend=sc2's state already holds every agent's last action"):
        build_config(preset="default", backend="sc2", state_last_action=True)


def test_the_qmix_mixers_own_setting_normalises_its_hypernetworks_and_keeps_it_monotonic():
    from qmix.config import build_config

    def layer_norms(params) -> list[str]:
        return [jax.tree_util.keystr(path) for path, _ in jax.tree_util.tree_flatten_with_path(params)[0]
                if "LayerNorm" in jax.tree_util.keystr(path)]

    example = mixer_input(jnp.zeros((3,)), jnp.zeros((STATE_DIM,)))
    plain = MIXERS.get("qmix")(build_config(alg="qmix").algorithm)
    assert not layer_norms(plain.init(jax.random.PRNGKey(0), example))  # off by default, as in the paper
    settings = build_config(alg="qmix", mixer_layer_norm=True, mixing_embed_dim=8, hypernet_embed_dim=16).algorithm
    mixer = Mixer(MIXERS.get("qmix")(settings))
    params = mixer.module.init(jax.random.PRNGKey(0), example)
    assert layer_norms(params)  # the hypernetworks' and V(s)'s hidden layers
    qkey, skey = jax.random.split(jax.random.PRNGKey(1))
    qs, states = 5.0 * jax.random.normal(qkey, (64, 3)), 100.0 * jax.random.normal(skey, (64, STATE_DIM))
    grads = jax.vmap(jax.grad(lambda q, s: mixer.apply(params, q, s)[0]))(qs, states)
    assert bool((grads >= 0).all())
