"""The worked examples of docs/extending.md: a new mixer and a new environment, each one class (or adapter)
and one registry line, checked by the same contracts as the built-in ones and trained end to end."""

import json
from dataclasses import dataclass

import flax.linen as nn
import jax
import jax.numpy as jnp
import pytest
from flax import struct

from qmix.config import build_config
from qmix.envs import ENVIRONMENTS, TimeStep
from qmix.nets.mixers import MIXERS, MixerInput
from qmix.run import train
from test_contracts import (
    test_every_algorithm_acts_on_available_actions_and_makes_one_finite_update as algorithm_contract,
)
from test_contracts import (
    test_every_environment_keeps_its_shapes_flags_and_available_actions as environment_contract,
)
from test_contracts import (
    test_every_mixer_returns_its_outputs_and_a_monotonic_one_is_monotonic as mixer_contract,
)


# --- docs/extending.md, "A mixer" ---
class WeightedSumMixer(nn.Module):
    """`vdn_w`: Q_tot = sum_a w_a(s) Q_a with positive, state-dependent weights w_a(s) = softplus(...)."""

    @nn.compact
    def __call__(self, x: MixerInput) -> jax.Array:
        weights = nn.softplus(nn.Dense(x.chosen_qs.shape[-1], name="weights")(x.state))  # [..., N] > 0
        return (weights * x.chosen_qs).sum(axis=-1, keepdims=True)


def register_mixer():
    MIXERS.add("vdn_w", lambda s: WeightedSumMixer(), "a state-weighted sum of the utilities", monotonic=True,
               algorithm="vdn_w", algorithm_description="VDN-W: VDN with positive state-dependent weights")


# --- docs/extending.md, "An environment" ---
CLIMBING = ((11.0, -30.0, 0.0), (-30.0, 7.0, 6.0), (0.0, 0.0, 5.0))  # the climbing game's payoffs


@struct.dataclass
class ClimbingState:
    steps: jax.Array  # [] int32


class ClimbingGame:
    """Two agents, three actions, one step: the payoff of the joint action, then the episode ends."""

    name = "climbing"
    n_agents, n_actions, obs_dim, state_dim, episode_limit = 2, 3, 1, 1, 1

    def _timestep(self, reward, terminated) -> TimeStep:
        return TimeStep(obs=jnp.ones((2, 1)), state=jnp.ones((1,)), avail_actions=jnp.ones((2, 3), bool),
                        reward=jnp.asarray(reward, jnp.float32), terminated=jnp.asarray(terminated),
                        truncated=jnp.asarray(False), won=jnp.asarray(False))

    def reset(self, key):
        return ClimbingState(jnp.zeros((), jnp.int32)), self._timestep(0.0, False)

    def step(self, key, env_state, actions):
        reward = jnp.array(CLIMBING)[actions[0], actions[1]]
        return ClimbingState(env_state.steps + 1), self._timestep(reward, True)


@dataclass(frozen=True)
class NoClimbingSettings:
    def validate(self, config) -> None:
        pass


def register_environment():
    ENVIRONMENTS.add("climbing", lambda name, settings: ClimbingGame(), "the climbing game (one step)",
                     settings=NoClimbingSettings)


@pytest.fixture
def extended():
    register_mixer()
    register_environment()
    yield
    MIXERS.remove("vdn_w")
    ENVIRONMENTS.remove("climbing")
    from qmix.algorithms import ALGORITHMS

    ALGORITHMS.remove("vdn_w")


def test_the_new_mixer_and_environment_keep_the_contracts(extended):
    mixer_contract("vdn_w")
    environment_contract("climbing")
    from qmix.envs import make_env
    from qmix.learn.episodes import EnvSpec

    algorithm_contract("vdn_w", EnvSpec.of(make_env(build_config(map="two_step"))))


def test_the_new_mixer_trains_on_the_new_environment(extended, tmp_path, capsys):
    from qmix import cli

    assert "vdn_w" in algorithms_listed(cli, capsys) and "climbing" in maps_listed(cli, capsys)
    config = build_config(preset="two_step", alg="vdn_w", map="climbing", env_steps=300, test_interval_episodes=100,
                          batch_size=8, buffer_size_episodes=64)
    train(config, tmp_path / "run", progress=False, tensorboard=False)
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["env_steps"] for r in records] == [0, 100, 200, 300]
    assert all(r["train_length"] == 1.0 for r in records[1:]) and records[-1]["updates"] > 0


def _listed(cli, capsys, command):
    import sys

    old, sys.argv = sys.argv, ["qmix", command]
    try:
        with pytest.raises(SystemExit):
            cli.main()
    finally:
        sys.argv = old
    return capsys.readouterr().out


def algorithms_listed(cli, capsys):
    return _listed(cli, capsys, "algs")


def maps_listed(cli, capsys):
    return _listed(cli, capsys, "maps")
