"""Contract tests over every registry entry: each environment, algorithm, mixer and agent network keeps the
promises the loop relies on. A new entry is checked by these without a line of test of its own."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import QUICK_COMPILE
from qmix.algorithms import ALGORITHMS
from qmix.algorithms.base import has_joint_action_values, uses_replay
from qmix.algorithms.value_decomposition.settings import settings_with_mixer
from qmix.build import make_trainer
from qmix.config import build_config
from qmix.envs import ENVIRONMENTS, make_env
from qmix.envs.base import episode_metrics
from qmix.episodes import EnvSpec, Episodes
from qmix.learn.rollout import run_episodes
from qmix.learn.step_collection import run_steps, start_collector
from qmix.nets.agent import AGENTS
from qmix.nets.mixers import MIXERS, MixerInput, mixer_outputs
from qmix.step_rollouts import StepRollout


def random_episode(env, key):
    """Reset, then `episode_limit` steps of uniformly random available actions, in one compiled scan.

    -> (the reset's TimeStep, the steps' TimeSteps stacked [T, ...]). It steps on after the episode ends
    (the environments never reset themselves); the checks read the steps up to the first end only.
    """
    reset_key, key = jax.random.split(key)
    env_state, first = env.reset(reset_key)

    def play(carry, _):
        key, env_state, ts = carry
        key, act_key, step_key = jax.random.split(key, 3)
        actions = jax.random.categorical(act_key, jnp.where(ts.avail_actions, 0.0, -jnp.inf)).astype(jnp.int32)
        env_state, ts = env.step(step_key, env_state, actions)
        return (key, env_state, ts), ts

    _, steps = jax.lax.scan(play, (key, env_state, first), length=env.episode_limit)
    return first, steps


def play_random_episodes(names) -> dict:
    """{name: (env, first TimeStep, steps)} for every map in `names`, all in one program: one trace and one
    compile for the lot (the SMAX maps share most of their code, so one program compiles faster than many)."""
    envs = {name: make_env(build_config(map=name)) for name in names}
    key = jax.random.PRNGKey(0)
    program = jax.jit(lambda key: {name: random_episode(env, key) for name, env in envs.items()})
    played = jax.device_get(program.lower(key).compile(QUICK_COMPILE)(key))
    return {name: (env, *played[name]) for name, env in envs.items()}


REGISTERED_MAPS = tuple(ENVIRONMENTS.names())  # every built-in environment, each a case of the test below
# The scenarios of one adapter differ in data (unit counts and types, grid sizes, agents, sight). The default
# set plays each adapter's first scenario and these, which each take a code path it does not; `-m slow` plays
# every scenario (compiling SMAX's step is about 4 s a scenario, even unoptimised).
SCENARIOS_WITH_THEIR_OWN_PATH = {
    "smacv2_5_units": "unit types drawn per episode (a colossus among SMAX's six)",
    "zerg_10_vs_11": "SMACv2's start positions, a race's unit weights, and more enemies than allies (drawn "
                     "types for those beyond the allies' count)",
    "lbf-2s-8x8-2p-2f-coop": "partial sight",
    "lbf-10x10-3p-3f": "food that one agent alone may eat",
    "rware-small-4ag": "two rows of shelf blocks",
}


def contract_cases(names) -> list:
    first_of_adapter, cases = set(), []
    for name in names:
        adapter = ENVIRONMENTS.entry(name).target
        quick = adapter not in first_of_adapter or name in SCENARIOS_WITH_THEIR_OWN_PATH
        first_of_adapter.add(adapter)
        cases.append(pytest.param(name, id=name, marks=() if quick else pytest.mark.slow))
    return cases


# The cases this session runs (set by the fixture below): `-k 3m` plays and compiles 3m alone, not every map.
selected_cases = {"maps": REGISTERED_MAPS}


@pytest.fixture(scope="module", autouse=True)
def environment_cases_selected(request):
    chosen = [item.callspec.params["name"] for item in request.session.items
              if getattr(item, "originalname", "") == ENVIRONMENT_CONTRACT and hasattr(item, "callspec")]
    selected_cases["maps"] = tuple(chosen)


@functools.cache
def played_together(names: tuple[str, ...]) -> dict:
    """A random episode of each of `names`, played once for the whole parametrised test."""
    return play_random_episodes(names)


def check_timesteps(env, ts, steps: int | None = None):
    """The TimeStep contract, for one TimeStep or for `steps` of them stacked on a leading axis."""
    N, A = env.n_agents, env.n_actions
    lead = () if steps is None else (steps,)
    assert ts.obs.shape == (*lead, N, env.obs_dim) and ts.obs.dtype == jnp.float32
    assert ts.state.shape == (*lead, env.state_dim) and ts.state.dtype == jnp.float32
    assert ts.avail_actions.shape == (*lead, N, A) and ts.avail_actions.dtype == jnp.bool_
    assert all(getattr(ts, f).shape == lead for f in ("reward", "terminated", "truncated", "won"))
    assert all(getattr(ts, f).dtype == jnp.bool_ for f in ("terminated", "truncated", "won"))
    assert np.all(np.any(ts.avail_actions, axis=-1)), "every agent needs an available action"
    assert not np.any(ts.terminated & ts.truncated), "an episode ends for one reason"
    assert np.all(np.isfinite(ts.obs)) and np.all(np.isfinite(ts.state)) and np.all(np.isfinite(ts.reward))
    measures = [m.name for m in episode_metrics(env).measures]
    assert sorted(ts.info) == sorted(measures), "TimeStep.info holds exactly the declared measures"
    assert all(v.shape == lead and v.dtype == jnp.float32 and np.all(np.isfinite(v)) for v in ts.info.values())


@pytest.mark.parametrize("name", contract_cases(REGISTERED_MAPS))
def test_every_environment_keeps_its_shapes_flags_and_available_actions(name):
    # an environment outside the selected cases (docs/extending.md's example calls this directly) plays alone
    together = selected_cases["maps"]
    played = played_together(together) if name in together else play_random_episodes([name])
    env, first, steps = played[name]
    assert min(env.n_agents, env.n_actions, env.obs_dim, env.state_dim, env.episode_limit) >= 1
    check_timesteps(env, first)
    assert float(first.reward) == 0.0 and not bool(first.terminated | first.truncated)
    ends = np.asarray(steps.terminated | steps.truncated)  # [T]
    assert ends.any(), "an episode of random play must end within the environment's episode_limit"
    length = int(np.argmax(ends)) + 1
    episode = jax.tree.map(lambda x: x[:length], steps)  # the steps up to and including the first end
    check_timesteps(env, episode, length)
    assert not np.any(episode.won & episode.truncated), "a win ends the episode, it is not cut by the time limit"
    if EnvSpec.of(env).fills_the_limit:
        assert length == env.episode_limit, "an environment whose episodes fill the limit ended one early"


ENVIRONMENT_CONTRACT = test_every_environment_keeps_its_shapes_flags_and_available_actions.__name__


@pytest.fixture(scope="module")
def two_step_spec():
    return EnvSpec.of(make_env(build_config(map="two_step")))


@pytest.mark.parametrize("name", ALGORITHMS.names())
def test_every_algorithm_acts_on_available_actions_and_makes_one_finite_update(name, two_step_spec):
    # one compiled batch size (where the family packs batches): packing has its own tests (test_packing.py)
    config = build_config(preset="two_step", alg=name, shared={"time_buckets": 1}, batch_size=4,
                          buffer_size_episodes=8)
    trainer = make_trainer(config)
    algorithm = trainer.algorithm
    assert uses_replay(ALGORITHMS.entry(name)) == algorithm.uses_replay, "the registry's fact and the class disagree"
    state = algorithm.init(jax.random.PRNGKey(0))
    example = algorithm.example_item()
    policy = algorithm.acting_policy(state, jnp.int32(0))
    if trainer.rollout_steps:  # step-based collection: an update learns from a rollout of every environment
        assert isinstance(example, StepRollout) and example.starts.shape == (trainer.rollout_steps + 1,)
        collect = jax.jit(lambda p, k, c: run_steps(algorithm, trainer.env, p, k, c, trainer.rollout_steps))
        _, batch, _ = collect(policy, jax.random.PRNGKey(1), start_collector(algorithm, trainer.env, jax.random.PRNGKey(6), 4))
        episodes = batch.steps
    else:
        assert isinstance(example, Episodes) and example.obs.shape[0] == two_step_spec.episode_limit + 1
        episodes, stats = jax.jit(lambda p, k: run_episodes(algorithm, trainer.env, p, k, 4))(policy, jax.random.PRNGKey(1))
        assert stats.lengths.tolist() == [2] * 4
        batch = episodes
    taken = jax.nn.one_hot(episodes.actions, two_step_spec.n_actions, dtype=bool)  # [E, T, N, A]
    assert bool((~taken | episodes.avail[:, :-1]).all()), "an unavailable action was taken"

    new_state, metrics, gradient_steps = jax.jit(algorithm.update)(state, batch, jax.random.PRNGKey(2))
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
    mixer = entry.load()(settings_with_mixer(entry.facts.get("settings"))(mixing_embed_dim=8, hypernet_embed_dim=16))
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


@pytest.mark.parametrize("name", ALGORITHMS.names())
def test_every_algorithm_takes_every_preset(name):
    """A preset's blocks belong to their families: every algorithm builds with every preset as it is."""
    from qmix.config import preset_names

    for preset in preset_names():
        assert build_config(preset=preset, alg=name).alg == name
