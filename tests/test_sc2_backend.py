"""The optional real-StarCraft II backend, without the game: SMAC's API played by stand-ins.

The stand-ins speak SMAC's `StarCraft2Env` interface (lists in, `(reward, terminated, info)` out, the time
limit reported as terminated with info["episode_limit"]). One wraps the JAX two-step game, so training
through the host-side loop can be compared with the compiled loop on the same task.
"""

from __future__ import annotations

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from qmix.algorithms import make_algorithm
from qmix.config import ConfigError, build_config
from qmix.envs import make_env, sc2
from qmix.envs.two_step import TwoStepGame
from qmix.episodes import EnvSpec
from qmix.learn.host_rollout import HostRollout
from qmix.run import train
from test_cli import run_cli


class SmacTwoStep:
    """The two-step game behind SMAC's interface (deterministic, so it matches the JAX game exactly)."""

    def __init__(self, map_name: str, seed: int = 0, reward_only_positive: bool = True):
        self.game = TwoStepGame()
        self.reward_only_positive = reward_only_positive
        self.closed = False

    def get_env_info(self):
        g = self.game
        return {"n_agents": g.n_agents, "n_actions": g.n_actions, "obs_shape": g.obs_dim,
                "state_shape": g.state_dim, "episode_limit": g.episode_limit}

    def reset(self):
        self.state, self.ts = self.game.reset(jax.random.PRNGKey(0))

    def step(self, actions):
        self.state, self.ts = self.game.step(jax.random.PRNGKey(0), self.state, np.asarray(actions, np.int32))
        return float(self.ts.reward), bool(self.ts.terminated), {"battle_won": False}

    def get_obs(self):
        return list(np.asarray(self.ts.obs))

    def get_state(self):
        return np.asarray(self.ts.state)

    def get_avail_actions(self):
        return np.asarray(self.ts.avail_actions).astype(int).tolist()

    def close(self):
        self.closed = True


class SmacCountdown:
    """A SMAC-like game that pays 1 per step and never ends by itself: SMAC cuts it at its limit of 3 steps.

    `win_at` (if set) ends the episode there with a win, as SMAC reports one.
    """

    n_agents, n_actions, limit = 2, 3, 3

    def __init__(self, map_name: str, seed: int = 0, reward_only_positive: bool = True, win_at: int | None = None):
        self.win_at = win_at

    def get_env_info(self):
        return {"n_agents": self.n_agents, "n_actions": self.n_actions, "obs_shape": 1, "state_shape": 2,
                "episode_limit": self.limit}

    def reset(self):
        self.t = 0

    def step(self, actions):
        self.t += 1
        if self.win_at == self.t:
            return 1.0, True, {"battle_won": True}
        if self.t >= self.limit:
            return 1.0, True, {"battle_won": False, "episode_limit": True}
        return 1.0, False, {"battle_won": False}

    def get_obs(self):
        return [np.array([self.t], np.float32) for _ in range(self.n_agents)]

    def get_state(self):
        return np.array([self.t, -self.t], np.float32)

    def get_avail_actions(self):
        return [[1, 0, 1]] * self.n_agents  # action 1 is never available

    def close(self):
        pass


def test_time_limit_is_a_truncation_and_a_win_a_termination():
    env = sc2.SC2Env("countdown", smac_env_class=SmacCountdown)
    assert (env.n_agents, env.n_actions, env.obs_dim, env.state_dim, env.episode_limit) == (2, 3, 1, 2, 3)
    first = env.reset()
    assert first.avail_actions.tolist() == [[True, False, True]] * 2
    steps = [env.step(np.zeros(2, np.int32)) for _ in range(3)]
    assert [(s.terminated, s.truncated, s.won) for s in steps] == [(False, False, False)] * 2 + [(False, True, False)]
    assert steps[-1].obs.tolist() == [[3.0], [3.0]] and steps[-1].state.tolist() == [3.0, -3.0]

    env = sc2.SC2Env("countdown", smac_env_class=lambda **kw: SmacCountdown(**kw, win_at=2))
    env.reset()
    steps = [env.step(np.zeros(2, np.int32)) for _ in range(2)]
    assert [(s.terminated, s.truncated, s.won) for s in steps] == [(False, False, False), (True, False, True)]


def test_host_rollout_pads_flags_and_never_takes_an_unavailable_action():
    """Two runs x two envs of the countdown: every episode is 3 steps, truncated at the last one."""
    config = build_config(map="countdown", backend="sc2", num_envs=2, num_seeds=2)
    algorithm = make_algorithm(config, EnvSpec(2, 3, 1, 2, 3))
    states = jax.vmap(algorithm.init)(jax.random.split(jax.random.PRNGKey(0), 2))
    policies = jax.vmap(algorithm.acting_policy)(states, jnp.zeros(2, jnp.int32))  # epsilon 1 at the start
    rollout = HostRollout(algorithm, lambda: sc2.SC2Env("countdown", smac_env_class=SmacCountdown), 2, 2)
    keys = jax.random.split(jax.random.PRNGKey(1), 2)
    episodes, stats = rollout.run(policies, keys, np.array([True, False]))
    # run 0 played; run 1 was inactive and is all padding
    assert episodes.filled[0].tolist() == [[True] * 3] * 2 and not episodes.filled[1].any()
    assert episodes.truncated[0].tolist() == [[False, False, True]] * 2 and not episodes.terminated.any()
    assert episodes.rewards[0].tolist() == [[1.0] * 3] * 2
    assert episodes.obs[0, :, :, 0, 0].tolist() == [[0.0, 1.0, 2.0, 3.0]] * 2  # slot t+1 holds step t's result
    assert stats.lengths.tolist() == [[3, 3], [0, 0]] and stats.returns.tolist() == [[3.0, 3.0], [0.0, 0.0]]
    assert not (episodes.actions[0] == 1).any()  # epsilon 1: random, but only among available actions


def test_missing_smac_is_one_clear_line(tmp_path, capsys):
    """Without SMAC installed (as here), training on the sc2 backend fails with exit 2 and what to install."""
    try:
        import smac.env  # noqa: F401

        pytest.skip("SMAC is installed here")
    except ImportError:
        pass
    code, output = run_cli(["train", "--env-steps", "100", "--out", str(tmp_path / "run"), "backend=sc2"], capsys)
    assert code == 2
    lines = output.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in output
    assert "smac" in lines[0] and "pip install" in lines[0] and "docs/sc2.md" in lines[0]


def test_missing_game_is_one_clear_line(tmp_path, monkeypatch):
    monkeypatch.setenv("SC2PATH", str(tmp_path / "no-game-here"))
    with pytest.raises(ConfigError, match="cannot find StarCraft II at .*no-game-here.*SC2PATH"):
        sc2.check_game_installed()


@pytest.mark.parametrize(
    "settings, words",
    [({"map": "two_step"}, "two-step"), ({"reward": "smax"}, "reward"), ({"episode_limit": 50}, "unknown setting 'episode_limit'"),
     ({"backend": "sc3"}, "unknown backend")],
)
def test_settings_the_sc2_backend_cannot_honour(settings, words):
    with pytest.raises(ConfigError, match=words):
        build_config(preset="default", overrides={"backend": "sc2", **settings})


@pytest.mark.parametrize("reward, only_positive", [("smac", True), ("smac_signed", False)])
def test_reward_setting_reaches_smac(monkeypatch, reward, only_positive):
    monkeypatch.setattr(sc2, "load_smac_env_class", lambda: SmacTwoStep)
    monkeypatch.setattr(sc2, "check_game_installed", lambda: None)
    env = make_env(build_config(map="3m", backend="sc2", reward=reward))
    assert env.game.reward_only_positive is only_positive


def _metrics(run_dir):
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in row.items() if k not in ("wall_seconds", "env_steps_per_second")} for row in rows]


@pytest.mark.slow  # two loops compiled for one comparison; the host loop serves real StarCraft II only
def test_host_loop_trains_exactly_like_the_compiled_loop(tmp_path, monkeypatch):
    """Same task, keys and settings: the host-side loop (as used for real StarCraft II) and the compiled
    loop log the same metrics and end with the same parameters."""
    monkeypatch.setattr(sc2, "load_smac_env_class", lambda: SmacTwoStep)
    monkeypatch.setattr(sc2, "check_game_installed", lambda: None)
    compiled = build_config(preset="two_step", overrides={
        "num_envs": "2", "num_seeds": "2", "batch_size": "4", "buffer_size_episodes": "64", "env_steps": "160",
        "test_interval_env_steps": "40", "test_episodes": "2", "updates_per_episode": "1.5",
        "target_update_interval_episodes": "10", "epsilon_anneal_env_steps": "100", "epsilon_finish": "0.1",
        "agent": "rnn", "obs_last_action": "true", "double_q": "true", "td_lambda": "0.5",
        "test_interval_episodes": "0",
    })
    # two_step is not a SMAC map: built past validation
    host = dataclasses.replace(compiled, backend="sc2", environment=sc2.Sc2Settings())
    train(compiled, tmp_path / "compiled", progress=False, tensorboard=False)
    train(host, tmp_path / "host", progress=False, tensorboard=False)
    for seed in ("seed_0", "seed_1"):
        want, got = _metrics(tmp_path / "compiled" / seed), _metrics(tmp_path / "host" / seed)
        assert len(want) == len(got) == 5
        for w, g in zip(want, got, strict=True):
            # a StarCraft II game can be won (this stand-in never is); the compiled two-step game has no win
            wins = g.keys() - w.keys()
            assert "test_win_rate" in wins and wins <= {"train_win_rate", "test_win_rate"} and w.keys() <= g.keys()
            assert all(g[key] == 0.0 for key in wins)
            for key in w:
                assert g[key] == pytest.approx(w[key], rel=1e-5, abs=1e-6), (seed, w["env_steps"], key)
        want_params = (tmp_path / "compiled" / seed / "params.msgpack").read_bytes()
        assert (tmp_path / "host" / seed / "params.msgpack").read_bytes() == want_params
