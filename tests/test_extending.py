"""The worked examples of docs/extending.md: a new mixer and a new environment, each one class (or adapter)
and one registry line, checked by the same contracts as the built-in ones and trained end to end."""

import json
from dataclasses import dataclass

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import yaml
from flax import struct

from command_line import evaluates_and_plots_its_return, qmix_cli
from qmix.config import build_config
from qmix.envs import ENVIRONMENTS, TimeStep
from qmix.errors import ConfigError
from qmix.nets.mixers import MIXERS, MixerInput
from qmix.run import train
from qmix.settings import setting
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


@dataclass(frozen=True)
class ScaledSumSettings:
    sum_scale: float = setting(1.0, "the scale of the sum")

    def validate(self, config) -> None:
        if self.sum_scale <= 0:
            raise ConfigError(f"sum_scale must be positive, got {self.sum_scale}")


class ScaledSumMixer(nn.Module):
    scale: float

    @nn.compact
    def __call__(self, x: MixerInput) -> jax.Array:
        return self.scale * x.chosen_qs.sum(axis=-1, keepdims=True)


def test_a_mixer_declares_settings_of_its_own_and_its_algorithm_has_them():
    MIXERS.add("vdn_scaled", lambda s: ScaledSumMixer(s.sum_scale), "a scaled sum", monotonic=True,
               settings=ScaledSumSettings, algorithm="vdn_scaled", algorithm_description="VDN, scaled")
    try:
        config = build_config(alg="vdn_scaled", sum_scale=2.0)
        assert config.algorithm.sum_scale == 2.0 and config.algorithm.mixing_embed_dim == 32
        with pytest.raises(ConfigError, match="sum_scale must be positive"):
            build_config(alg="vdn_scaled", sum_scale=-1.0)
        with pytest.raises(ConfigError, match="unknown setting 'sum_scale'"):
            build_config(alg="vdn", sum_scale=2.0)
        mixer_contract("vdn_scaled")
    finally:
        MIXERS.remove("vdn_scaled")
        from qmix.algorithms import ALGORITHMS

        ALGORITHMS.remove("vdn_scaled")


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
    from qmix.episodes import EnvSpec

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
    return qmix_cli(capsys, command)[1]


def algorithms_listed(cli, capsys):
    return _listed(cli, capsys, "algs")


def maps_listed(cli, capsys):
    return _listed(cli, capsys, "maps")


# --- docs/extending.md, "An algorithm of another family" and "An environment without a win" ---
TINY_CLI = ("--no-progress", "--env-steps", "300", "num_envs=2", "test_interval_env_steps=150", "test_episodes=2",
            "final_evaluation_episodes=4", "agent_hidden_dim=8")


def train_ippo(capsys, run, map_name: str, *settings: str):
    code, out, err = qmix_cli(capsys, "train", "--alg", "ippo", "--map", map_name, "--out", str(run), *settings)
    assert code == 0, err
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    config = yaml.safe_load((run / "config.yaml").read_text())
    # on-policy: one update per iteration (an episode in each environment), of epochs x minibatches steps
    steps_per_update = config["epochs"] * config["minibatches"]
    assert records[-1]["updates"] == steps_per_update * records[-1]["episodes"] // config["num_envs"]
    assert {"policy_loss", "value_loss", "entropy", "clip_fraction", "test_return"} <= set(records[-1])
    return out


def test_an_on_policy_family_trains_evaluates_and_plots_from_the_command_line(tmp_path, capsys):
    run = tmp_path / "ippo"
    # the two-step game's own settings (one environment, 4 epochs of one minibatch), so that `qmix two-step`
    # below plays the programs this run compiled; only the budget and the schedules are the test's
    out = train_ippo(capsys, run, "two_step", "--preset", "two_step", "--no-progress", "--env-steps", "300",
                     "test_interval_episodes=75", "final_evaluation_episodes=4")
    assert "ippo on two_step" in out and "return" in out
    evaluates_and_plots_its_return(capsys, run, tmp_path)
    code, out, err = qmix_cli(capsys, "two-step", "--alg", "ippo", "--seeds", "1", "--episodes", "20")
    assert code == 0 and "no joint values" in out, err


@pytest.mark.slow
def test_an_on_policy_family_plays_and_renders_a_starcraft_map_from_the_command_line(tmp_path, capsys):
    run = tmp_path / "ippo"
    out = train_ippo(capsys, run, "3m", *TINY_CLI, "critic_hidden_dim=8", "epochs=2", "minibatches=2")
    assert "ippo on 3m" in out and "win rate" in out
    code, out, err = qmix_cli(capsys, "evaluate", str(run), "--episodes", "4")
    assert code == 0 and "win rate" in out and "lost" in out, err
    code, out, err = qmix_cli(capsys, "render", str(run), "--out", str(tmp_path / "ippo.gif"))
    assert code == 0 and (tmp_path / "ippo.gif").stat().st_size > 0, err


@pytest.mark.parametrize("alg", ["qmix", pytest.param("vdn", marks=pytest.mark.slow)])
def test_an_environment_without_a_win_trains_evaluates_and_plots_its_return(alg, tmp_path, capsys):
    run = tmp_path / alg
    code, out, err = qmix_cli(capsys, "train", "--alg", alg, "--map", "simple_spread", "--out", str(run), *TINY_CLI,
                              "batch_size=4", "buffer_size_episodes=16", "mixing_embed_dim=8", "hypernet_embed_dim=16")
    assert code == 0, err
    assert f"{alg} on simple_spread" in out and "return" in out and "win" not in out
    assert (run / "params.msgpack").exists()
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["env_steps"] for r in records] == [0, 150, 300]
    assert all(np.isfinite(r["test_return"]) and r["test_return"] < 0 for r in records)  # distances cost
    assert {"test_return", "test_collisions", "test_occupied_landmarks"} <= set(records[-1])
    assert not any("win" in key for record in records for key in record)
    code, out, err = qmix_cli(capsys, "evaluate", str(run), "--episodes", "4")
    assert code == 0 and "return" in out and "win" not in out and "time limit" not in out, err
    code, out, err = qmix_cli(capsys, "plot", str(run), "--out", str(tmp_path / "curve"))  # its headline: return
    assert code == 0 and (tmp_path / "curve.png").is_file(), err
    code, out, err = qmix_cli(capsys, "render", str(run))
    assert code == 2 and len(err.strip().splitlines()) == 1 and "render" in err


@pytest.mark.slow
def test_the_other_family_and_the_environment_without_a_win_run_in_a_sweep(tmp_path, capsys):
    spec = tmp_path / "sweep.yaml"
    spec.write_text(f"""
maps: [simple_spread]
algs: [ippo, vdn]
seeds: 1
env_steps: 150
settings: {{num_envs: 2, test_interval_env_steps: 75, test_episodes: 2, batch_size: 4, buffer_size_episodes: 8,
           agent_hidden_dim: 8, epochs: 1, minibatches: 1}}
evaluate_episodes: 4
out: {tmp_path / "sweep"}
""")
    code, out, err = qmix_cli(capsys, "sweep", str(spec), "--cpus", "1", "--no-progress")
    assert code == 0, err
    for alg in ("ippo", "vdn"):
        evaluation = json.loads(next((tmp_path / "sweep").glob(f"simple_spread-{alg}*/**/evaluation.json")).read_text())
        assert evaluation["headline"] == "return"
