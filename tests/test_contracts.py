"""Contract tests over every registry entry: each environment, algorithm, mixer and agent network keeps the
promises the loop relies on. A new entry is checked by these without a line of test of its own."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from qmix.algorithms import ALGORITHMS
from qmix.algorithms.base import has_joint_action_values
from qmix.algorithms.value_decomposition.settings import settings_with_mixer
from qmix.config import build_config
from qmix.envs import ENVIRONMENTS, make_env
from qmix.learn.episodes import EnvSpec, Episodes
from qmix.learn.loop import Trainer
from qmix.learn.rollout import run_episodes
from qmix.nets.agent import AGENTS
from qmix.nets.mixers import MIXERS, MixerInput, mixer_outputs

QUICK_MAPS = {"two_step", "3m"}  # the rest compile for a while each: in the slow set
ENV_CASES = [pytest.param(e.name, marks=() if e.name in QUICK_MAPS else pytest.mark.slow) for e in ENVIRONMENTS]


def check_timestep(env, ts):
    N, A = env.n_agents, env.n_actions
    assert ts.obs.shape == (N, env.obs_dim) and ts.obs.dtype == jnp.float32
    assert ts.state.shape == (env.state_dim,) and ts.state.dtype == jnp.float32
    assert ts.avail_actions.shape == (N, A) and ts.avail_actions.dtype == jnp.bool_
    assert all(getattr(ts, f).shape == () for f in ("reward", "terminated", "truncated", "won"))
    assert all(getattr(ts, f).dtype == jnp.bool_ for f in ("terminated", "truncated", "won"))
    assert bool(ts.avail_actions.any(axis=-1).all()), "every agent needs an available action"
    assert not bool(ts.terminated & ts.truncated), "an episode ends for one reason"
    assert bool(jnp.isfinite(ts.obs).all() & jnp.isfinite(ts.state).all() & jnp.isfinite(ts.reward))


@pytest.mark.parametrize("name", ENV_CASES)
def test_every_environment_keeps_its_shapes_flags_and_available_actions(name):
    env = make_env(build_config(map=name))
    assert min(env.n_agents, env.n_actions, env.obs_dim, env.state_dim, env.episode_limit) >= 1
    reset, step = jax.jit(env.reset), jax.jit(env.step)
    key = jax.random.PRNGKey(0)
    env_state, ts = reset(key)
    check_timestep(env, ts)
    assert float(ts.reward) == 0.0 and not bool(ts.terminated | ts.truncated)
    ended = False
    for _ in range(env.episode_limit):
        key, act_key, step_key = jax.random.split(key, 3)
        actions = jax.random.categorical(act_key, jnp.where(ts.avail_actions, 0.0, -jnp.inf)).astype(jnp.int32)
        env_state, ts = step(step_key, env_state, actions)
        check_timestep(env, ts)
        ended = bool(ts.terminated | ts.truncated)
        if ended:
            break
    assert ended, "an episode of random play must end within the environment's episode_limit"
    assert not (bool(ts.won) and bool(ts.truncated)), "a win ends the episode, it is not cut by the time limit"


@pytest.fixture(scope="module")
def two_step_spec():
    return EnvSpec.of(make_env(build_config(map="two_step")))


@pytest.mark.parametrize("name", ALGORITHMS.names())
def test_every_algorithm_acts_on_available_actions_and_makes_one_finite_update(name, two_step_spec):
    config = build_config(preset="two_step", alg=name, batch_size=4, buffer_size_episodes=8)
    trainer = Trainer(config)
    algorithm = trainer.algorithm
    state = algorithm.init(jax.random.PRNGKey(0))
    example = algorithm.example_item()
    assert isinstance(example, Episodes) and example.obs.shape[0] == two_step_spec.episode_limit + 1
    policy = algorithm.acting_policy(state, jnp.int32(0))
    episodes, stats = jax.jit(lambda p, k: run_episodes(algorithm, trainer.env, p, k, 4))(policy, jax.random.PRNGKey(1))
    taken = jax.nn.one_hot(episodes.actions, two_step_spec.n_actions, dtype=bool)  # [E, T, N, A]
    assert bool((~taken | episodes.avail[:, :-1]).all()), "an unavailable action was taken"
    assert stats.lengths.tolist() == [2] * 4

    new_state, metrics, gradient_steps = jax.jit(algorithm.update)(state, episodes, jax.random.PRNGKey(2))
    assert gradient_steps.shape == () and gradient_steps.dtype == jnp.int32 and int(gradient_steps) >= 1
    assert jax.tree.structure(new_state) == jax.tree.structure(state)
    for got, want in zip(jax.tree.leaves(new_state), jax.tree.leaves(state), strict=True):
        assert got.shape == want.shape and got.dtype == want.dtype
    assert metrics and all(v.shape == () and bool(jnp.isfinite(v)) for v in metrics.values()), metrics
    after = algorithm.after_iteration(new_state, jnp.int32(4))
    assert jax.tree.structure(after) == jax.tree.structure(state)
    saved = algorithm.saved_parameters(after)
    assert list(saved)[0] == "params"
    assert set(algorithm.test_policies(after)) >= {""}
    for saved_name, tree in saved.items():  # every saved file gives a policy that acts on available actions
        saved_policy = algorithm.policy_from_saved(saved_name, tree)
        greedy, _ = jax.jit(lambda p, k: run_episodes(algorithm, trainer.env, p, k, 2))(saved_policy, jax.random.PRNGKey(3))
        assert bool((~jax.nn.one_hot(greedy.actions, two_step_spec.n_actions, dtype=bool) | greedy.avail[:, :-1]).all())
    if has_joint_action_values(algorithm):
        _, first = trainer.env.reset(jax.random.PRNGKey(4))
        table = algorithm.joint_action_values("params", saved["params"], first.obs, first.state, first.avail_actions)
        assert table.shape == (two_step_spec.n_actions,) * two_step_spec.n_agents
        assert bool(jnp.isfinite(table).all())


@pytest.mark.parametrize("name", MIXERS.names())
def test_every_mixer_returns_its_outputs_and_a_monotonic_one_is_monotonic(name):
    entry = MIXERS.entry(name)
    # built from the settings the algorithm it trains under is given (the family's and the mixer's own)
    mixer = entry.target(settings_with_mixer(entry.facts.get("settings"))(mixing_embed_dim=8, hypernet_embed_dim=16))
    n, a, s = 3, 4, 5
    keys = jax.random.split(jax.random.PRNGKey(0), 5)
    all_qs = 3.0 * jax.random.normal(keys[0], (16, n, a))
    actions = jax.random.randint(keys[1], (16, n), 0, a)
    state = jax.random.normal(keys[2], (16, s))
    # some actions unavailable, never the one taken
    avail = (jax.random.uniform(keys[4], (16, n, a)) < 0.6) | jax.nn.one_hot(actions, a, dtype=bool)

    def q_tot(chosen, params):
        return mixer.apply(params, MixerInput(chosen, all_qs, actions, state, avail))

    chosen = jnp.take_along_axis(all_qs, actions[..., None], axis=-1)[..., 0]
    params = mixer.init(keys[3], MixerInput(chosen[0], all_qs[0], actions[0], state[0], avail[0]))
    assert q_tot(chosen, params).shape == (16, mixer_outputs(name, n))
    if entry.monotonic:
        grads = jax.grad(lambda c: q_tot(c, params).sum())(chosen)
        assert bool((grads >= 0).all()), f"{name} declares itself monotonic: dQ_tot/dQ_a {float(grads.min())}"


@pytest.mark.parametrize("name", AGENTS.names())
def test_every_agent_network_maps_inputs_to_one_value_per_action(name):
    net = AGENTS.get(name)(5, 8)
    hidden, inputs = jnp.zeros((2, 3, 8)), jnp.ones((2, 3, 7))
    params = net.init(jax.random.PRNGKey(0), hidden, inputs)
    new_hidden, q = net.apply(params, hidden, inputs)
    assert new_hidden.shape == hidden.shape and q.shape == (2, 3, 5)
    assert np.isfinite(np.asarray(q)).all()
