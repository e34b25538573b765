"""Metrics follow what an environment declares: its measures reduced over episodes, logs and readers without
a win rate where there is no win, `qmix plot --metric`, the closing line, and capabilities by registry fact."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import yaml

from command_line import qmix_cli
from qmix.envs.base import EpisodeMetrics, Measure, TimeStep
from qmix.episodes import evaluation_metrics
from qmix.learn.rollout import run_episodes


class CountingGame:
    """One agent, one action; step t (1, 2, 3, ...) pays reward 1 and reports info collisions = t and
    covered = 10 t; the episode terminates after 3 steps unless the time limit (episode_limit) comes first."""

    n_agents, n_actions, obs_dim, state_dim = 1, 1, 1, 1
    has_win = False
    measures = (Measure("collisions", "summed over the steps", "sum"), Measure("covered", "at the end", "last"))

    def __init__(self, episode_limit: int):
        self.episode_limit = episode_limit

    def _timestep(self, t, reward):
        t = jnp.asarray(t, jnp.float32)
        return TimeStep(obs=jnp.zeros((1, 1)), state=jnp.zeros((1,)), avail_actions=jnp.ones((1, 1), bool),
                        reward=jnp.asarray(reward, jnp.float32), terminated=t >= 3, truncated=jnp.asarray(False),
                        won=jnp.asarray(False), info={"collisions": t, "covered": 10 * t})

    def reset(self, key):
        return jnp.zeros((), jnp.int32), self._timestep(0, 0.0)

    def step(self, key, t, actions):
        return t + 1, self._timestep(t + 1, 1.0)


class OnlyAction:
    """A policy-free stand-in for an algorithm: every agent takes action 0."""

    def initial_actor_state(self, n_envs):
        return jnp.zeros((n_envs,))

    def act(self, policy, state, key, obs, avail):
        return state, jnp.zeros(obs.shape[:2], jnp.int32)


@pytest.mark.parametrize("limit, expected", [
    (5, {"test_return": 3.0, "test_length": 3.0, "test_collisions": 1 + 2 + 3, "test_covered": 30.0}),
    (2, {"test_return": 2.0, "test_length": 2.0, "test_collisions": 1 + 2, "test_covered": 20.0}),
])
def test_measures_are_summed_or_taken_at_the_last_step_of_each_episode(limit, expected):
    _, stats = run_episodes(OnlyAction(), CountingGame(limit), None, jax.random.PRNGKey(0), 3)
    assert list(stats.metrics()) == ["return", "length", "collisions", "covered"]  # no win_rate: no win
    assert {k: float(v) for k, v in evaluation_metrics(stats).items()} == expected


# --- evaluate on an environment without a win ---

def test_an_evaluation_without_a_win_reports_each_metric_with_a_t_interval():
    from qmix.evaluate import RunEvaluation, _summarise, format_evaluation

    declared = EpisodeMetrics(False, (Measure("collisions", "", "sum"),), "return")
    outcome = {"return": np.array([1.0, 3.0]), "length": np.array([2, 2]), "collisions": np.array([0.0, 4.0]),
               "time_limit": np.array([False, True])}
    run = _summarise(Path("seed_0"), outcome, 2, declared)
    assert run.metrics == {"return": 2.0, "length": 2.0, "collisions": 2.0}
    half_width = 12.706205 * np.std([1.0, 3.0], ddof=1) / np.sqrt(2)  # t_{0.975, 1} * sd / sqrt(n)
    assert run.intervals["return"] == pytest.approx([2.0 - half_width, 2.0 + half_width])
    assert (run.win_rate, run.lost, run.time_limit) == (None, None, None)
    evaluation = RunEvaluation("r", "spread", "qmix", 2, 0, "final", [run, run], "return", 2.0, 0.0)
    saved = json.loads(evaluation.to_json())
    assert (saved["headline"], saved["mean_return"], saved["mean_return_ci"]) == ("return", 2.0, 0.0)
    assert "mean_win_rate" not in saved and "win_rate" not in saved["runs"][0]
    assert saved["runs"][0]["metrics"] == run.metrics
    lines = format_evaluation(evaluation)
    assert lines[1] == (f"seed_0: return 2.00 +- {half_width:.2f} over 2 greedy episodes; length 2.00 +- 0.00; "
                        f"collisions 2.00 +- {2 * half_width:.2f}")
    assert lines[3] == "mean over 2 runs: 2.00 +- 0.00 (95% t interval)"
    assert not any("win" in line or "lost" in line for line in lines)


def test_the_report_reads_old_win_rate_evaluations_and_new_headline_ones(tmp_path):
    from qmix.results.evaluations import pair_evaluations

    old = {"params": "final", "runs": [{"episodes": 10, "win_rate": 0.5}], "mean_win_rate": 0.5}
    new = {"params": "final", "headline": "return", "runs": [{"episodes": 10, "metrics": {"return": 7.5}}]}
    for name, content in (("3m-qmix", old), ("two_step-qmix", new)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "evaluation.json").write_text(json.dumps(content))
    smax, game = pair_evaluations([tmp_path / "3m-qmix", tmp_path / "two_step-qmix"], 1)
    assert (smax.headline, smax.values, game.headline, game.values) == ("win_rate", [0.5], "return", [7.5])


# --- the closing line of `qmix train` ---

def test_the_closing_line_names_the_headline_and_the_final_evaluation():
    from qmix.closing import closing_line
    from qmix.evaluate import RunEvaluation, SeedEvaluation

    config = SimpleNamespace(alg="qmix", map="two_step", num_seeds=1)
    summary = SimpleNamespace(run_dir="runs/x", env_steps=[400], wall_seconds=2.0, headline="return",
                              final_test_headline=[7.0], best_test_headline=[8.0])
    run = SeedEvaluation("seed_1", 512, {"return": 7.5, "length": 2.0}, {"return": [7.4, 7.6], "length": [2, 2]},
                         7.5, 2.0)
    evaluation = RunEvaluation("runs/x", "two_step", "qmix", 512, 0, "final", [run], "return", 7.5, None)
    assert closing_line(summary, config, evaluation) == (
        "done: qmix on two_step, 1 run(s), 400 env steps each in 2 s (200 env steps/s); final test return 7.00 "
        "(best 8.00); greedy return 7.50 +- 0.10 over 512 episodes (evaluation.json); run folder runs/x")
    smax = SimpleNamespace(**{**vars(summary), "headline": "win_rate", "final_test_headline": [0.25],
                              "best_test_headline": [0.5]})
    assert "final test win rate 25% (best 50%); run folder" in closing_line(smax, config, None)


# --- readers and `qmix plot` on runs without a win ---

def write_return_only_run(folder: Path) -> Path:
    """A two-step run folder: test points with test_return and test_length but no test_win_rate."""
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(yaml.safe_dump({"alg": "qmix", "map": "two_step", "seed": 0}))
    lines = [{"env_steps": 0, "test_return": 1.0, "test_length": 2.0},
             {"env_steps": 100, "train_return": 3.0},
             {"env_steps": 200, "test_return": 7.0, "test_length": 2.0}]
    (folder / "metrics.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    return folder


def test_the_reader_keeps_test_points_without_a_win_rate(tmp_path):
    from qmix.results.runs import load_runs

    (run,) = load_runs([write_return_only_run(tmp_path / "run")])
    np.testing.assert_array_equal(run.env_steps, [0, 200])
    assert sorted(run.tests) == ["test_length", "test_return"]
    np.testing.assert_array_equal(run.test_return, [1.0, 7.0])
    assert np.isnan(run.test_win_rate).all() and run.curve("test_win_rate")[0].size == 0


def test_a_learning_curve_without_a_win_has_no_win_panel(tmp_path):
    from qmix.results.plots import build_learning_curve
    from qmix.results.runs import load_runs

    axes = build_learning_curve(load_runs([write_return_only_run(tmp_path / "run")])).get_axes()
    assert [ax.get_ylabel() for ax in axes] == ["test return", "test length"]


def run_cli(argv, capsys) -> tuple[int, str, str]:
    return qmix_cli(capsys, *argv)


def write_win_run(folder: Path) -> Path:
    """A 3m run folder whose test points hold a win rate."""
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(yaml.safe_dump({"alg": "vdn", "map": "3m", "seed": 0}))
    lines = [{"env_steps": 0, "test_win_rate": 0.0, "test_return": 2.0},
             {"env_steps": 200, "test_win_rate": 0.5, "test_return": 12.0}]
    (folder / "metrics.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    return folder


def test_maps_with_and_without_a_win_are_each_shown_by_their_own_headline(tmp_path, capsys):
    from qmix.results.headline import metric_groups
    from qmix.results.runs import load_runs

    runs = load_runs([write_return_only_run(tmp_path / "two_step"), write_win_run(tmp_path / "3m")])
    groups = metric_groups(runs)
    assert {metric: [run.map for run in group] for metric, group in groups.items()} == {
        "test_return": ["two_step"], "test_win_rate": ["3m"]}
    assert sorted(run.map for run in metric_groups(runs, "return")["test_return"]) == ["3m", "two_step"]
    code, out, err = run_cli(["plot", str(tmp_path / "two_step"), str(tmp_path / "3m"), "--out", str(tmp_path / "f")],
                             capsys)
    assert code == 0, err
    assert "| two_step | qmix | 1 |" in out and "| 3m | vdn | 1 |" in out
    assert (tmp_path / "f_test_return.png").is_file() and (tmp_path / "f_test_win_rate.png").is_file()


def test_plot_shows_a_return_only_run_by_its_headline_and_refuses_an_absent_metric(tmp_path, capsys):
    run = write_return_only_run(tmp_path / "run")
    code, out, _ = run_cli(["plot", str(run), "--out", str(tmp_path / "fig")], capsys)
    assert code == 0 and "final test return" in out and "| two_step | qmix | 1 |" in out
    assert (tmp_path / "fig.png").is_file()
    code, _, _ = run_cli(["plot", str(run), "--metric", "length"], capsys)  # test_ may be left out
    assert code == 0 and Path("test_length.png").is_file()
    for written in Path().glob("test_length.*"):
        written.unlink()
    code, out, err = run_cli(["plot", str(run), "--metric", "test_win_rate", "--out", str(tmp_path / "x")], capsys)
    assert code == 2 and err.count("\n") == 1
    assert "no run logged the test metric 'test_win_rate'" in err and "test_return, test_length" in err
    code, _, err = run_cli(["plot", str(run), "--heuristic", "--out", str(tmp_path / "x")], capsys)
    assert code == 2 and err.count("\n") == 1 and "heuristic" in err


def test_capabilities_are_registry_facts():
    from qmix.envs import ENVIRONMENTS, require_capability
    from qmix.errors import ConfigError

    assert ENVIRONMENTS.entry("3m").facts.get("render") and ENVIRONMENTS.entry("3m").facts.get("heuristic")
    assert not ENVIRONMENTS.entry("two_step").facts.get("render")
    require_capability("3m", "render", "drawing")
    with pytest.raises(ConfigError, match=r"^drawing: the environment 'two_step' does not offer "
                                          r"render; use a map that does, e\.g\. "):
        require_capability("two_step", "render", "drawing")
    with pytest.raises(ConfigError, match=r"^drawing: '3m' in real StarCraft II \(backend=sc2\) does not offer"):
        require_capability("3m", "render", "drawing", backend="sc2")


def test_train_on_the_two_step_game_closes_with_its_greedy_return_and_writes_the_evaluation(tmp_path, capsys):
    run = tmp_path / "run"
    code, out, _ = run_cli(["train", "--preset", "two_step", "env_steps=40", "test_interval_episodes=10",
                            "final_evaluation_episodes=8", "--out", str(run), "--no-progress"], capsys)
    assert code == 0
    (closing,) = [line for line in out.splitlines() if line.startswith("done: ")]
    assert "final test return " in closing and "greedy return " in closing and "over 8 episodes" in closing
    assert "win" not in closing
    saved = json.loads((run / "evaluation.json").read_text())
    assert saved["headline"] == "return" and saved["episodes"] == 8 and "mean_return" in saved
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert all("test_return" in r and not any("win_rate" in key for key in r) for r in records)
