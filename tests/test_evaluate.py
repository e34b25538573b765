"""`qmix evaluate`: greedy episodes from a finished run's parameters, checked against outcomes known by hand."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import serialization

from qmix import evaluate as evaluation
from qmix.build import make_trainer
from qmix.config import ConfigError, build_config, config_to_yaml
from qmix.envs.heuristic import wilson_interval
from qmix.run_folder import parameter_binding, seed_folders, write_parameter_manifest


def fixed_choice_params(trainer, action: int, key: int = 0):
    """Parameters whose agents always prefer `action`: zero output weights, a bias of 1 on that action."""
    params = trainer.algorithm.init(jax.random.PRNGKey(key)).params
    q_layer = params.agent["params"]["q"]
    bias = jnp.zeros_like(q_layer["bias"]).at[action].set(1.0)
    agent = {"params": {**params.agent["params"], "q": {"kernel": jnp.zeros_like(q_layer["kernel"]), "bias": bias}}}
    return params.replace(agent=agent)


def write_run(folder, config, params_per_run):
    """A run folder as `qmix train` leaves it: config.yaml, and params.msgpack per run."""
    folder.mkdir()
    (folder / "config.yaml").write_text(config_to_yaml(config))
    for run_folder, params in zip(seed_folders(folder, config), params_per_run, strict=True):
        run_folder.mkdir(exist_ok=True)
        (run_folder / "params.msgpack").write_bytes(serialization.to_bytes(params))
        write_parameter_manifest(run_folder, ["params.msgpack"])


@pytest.fixture(scope="module")
def two_step_config():
    return build_config(preset="two_step", num_seeds=2)


def test_two_step_greedy_returns_are_the_payoffs_of_the_chosen_cells(tmp_path, two_step_config):
    # Agent 1's first action picks the second-step matrix; everyone then plays the same action again.
    # Always action 0: matrix 2A, payoff 7 whatever is played. Always action 1: matrix 2B, cell (1, 1) = 8.
    trainer = make_trainer(two_step_config)
    write_run(tmp_path / "run", two_step_config, [fixed_choice_params(trainer, 0), fixed_choice_params(trainer, 1)])
    result = evaluation.evaluate_run(tmp_path / "run", episodes=10, seed=0)
    seven, eight = result.runs
    assert (seven.mean_return, eight.mean_return) == (7.0, 8.0)
    for run in result.runs:
        assert run.episodes == 10 and run.mean_length == 2.0
        assert (run.win_rate, run.lost, run.time_limit) == (None, None, None)  # the game has no win
        assert list(run.metrics) == ["return", "length"]
    t_half_width = 12.706205 * np.std([7.0, 8.0], ddof=1) / np.sqrt(2)  # t_{0.975, 1} * sd / sqrt(2)
    assert (result.headline, result.mean) == ("return", 7.5) and result.mean_ci == pytest.approx(t_half_width)
    assert eight.intervals["return"] == [8.0, 8.0]  # the same payoff in every episode: no spread
    saved = json.loads((tmp_path / "run" / evaluation.RESULT_FILE).read_text())
    assert saved["runs"][1]["mean_return"] == 8.0 and saved["episodes"] == 10
    assert (saved["headline"], saved["mean_return"], saved["runs"][1]["metrics"]) == (
        "return", 7.5, {"return": 8.0, "length": 2.0})
    assert not any("win" in key for key in saved) and not any("win" in key for key in saved["runs"][0])


def test_smax_episodes_cut_by_the_time_limit_count_as_time_limit(tmp_path, monkeypatch):
    # Three steps are too few for the teams (16 apart) to meet: every episode ends at the time limit.
    config = build_config(preset="default", map="3m", episode_limit=3)
    trainer = make_trainer(config)
    write_run(tmp_path / "run", config, [fixed_choice_params(trainer, 4)])  # "stop", always available
    monkeypatch.setattr(evaluation, "ROUND_EPISODES", 8)  # 20 episodes: rounds of 8, 8 and 4 of 8
    result = evaluation.evaluate_run(tmp_path / "run", episodes=20, seed=1)
    (run,) = result.runs
    assert (run.episodes, run.win_rate, run.lost, run.time_limit, run.mean_length) == (20, 0.0, 0.0, 1.0, 3.0)
    assert (run.win_ci_low, run.win_ci_high) == pytest.approx(wilson_interval(0, 20))
    assert (result.headline, result.mean, result.mean_ci) == ("win_rate", 0.0, None)  # one run: no interval
    saved = json.loads((tmp_path / "run" / evaluation.RESULT_FILE).read_text())
    assert (saved["mean_win_rate"], saved["mean_win_rate_ci"], saved["runs"][0]["win_rate"]) == (0.0, None, 0.0)
    assert saved["runs"][0]["metrics"] == {"return": run.mean_return, "win_rate": 0.0, "length": 3.0}


def test_the_same_seed_plays_the_same_games_and_another_seed_other_ones(tmp_path):
    config = build_config(preset="default", map="3m")
    trainer = make_trainer(config)
    write_run(tmp_path / "run", config, [trainer.algorithm.init(jax.random.PRNGKey(7)).params])
    first = evaluation.evaluate_run(tmp_path / "run", episodes=24, seed=3, write=False).runs[0]
    again = evaluation.evaluate_run(tmp_path / "run", episodes=24, seed=3, write=False).runs[0]
    other = evaluation.evaluate_run(tmp_path / "run", episodes=24, seed=4, write=False).runs[0]
    assert first == again
    assert (first.mean_return, first.mean_length) != (other.mean_return, other.mean_length)
    assert np.isclose(first.win_rate + first.lost + first.time_limit, 1.0)
    assert not (tmp_path / "run" / evaluation.RESULT_FILE).exists()


def test_an_unfinished_run_and_foreign_parameters_are_refused_in_one_line(tmp_path, two_step_config):
    trainer = make_trainer(two_step_config)
    write_run(tmp_path / "run", two_step_config, [fixed_choice_params(trainer, 0)] * 2)
    (tmp_path / "run" / "seed_1" / "params.msgpack").unlink()
    with pytest.raises(ConfigError, match=r"no final parameters in .*seed_1.*qmix train --resume .*run`"):
        evaluation.evaluate_run(tmp_path / "run")
    (tmp_path / "run" / "seed_1" / "params.msgpack").write_bytes(b"not parameters")
    with pytest.raises(ConfigError, match="does not match its checksum") as error:
        evaluation.evaluate_run(tmp_path / "run")
    assert "\n" not in str(error.value)
    write_parameter_manifest(tmp_path / "run" / "seed_1", ["params.msgpack"])  # listed, but not parameters
    with pytest.raises(ConfigError, match="does not hold parameters for the run's config.yaml") as error:
        evaluation.evaluate_run(tmp_path / "run")
    assert "\n" not in str(error.value)


def test_parameters_of_another_algorithm_or_other_sizes_are_refused_in_one_line(tmp_path, two_step_config):
    """The manifest binds the parameters to the run that wrote them: QMIX's parameters and manifest in a run
    folder whose config.yaml says VDN (whose template would take them silently), or other network sizes."""
    trainer = make_trainer(two_step_config)
    write_run(tmp_path / "run", two_step_config, [fixed_choice_params(trainer, 1)] * 2)
    for folder in seed_folders(tmp_path / "run", two_step_config):
        write_parameter_manifest(folder, ["params.msgpack"], parameter_binding(two_step_config, trainer.env))
    assert evaluation.evaluate_run(tmp_path / "run", episodes=2, seed=0).mean == 8.0  # its own run: played
    for change, words in (({"alg": "vdn"}, "alg 'qmix', not 'vdn'"), ({"lr": 0.001}, "lr 0.0005, not 0.001")):
        other = build_config(preset="two_step", num_seeds=2, **change)
        (tmp_path / "run" / "config.yaml").write_text(config_to_yaml(other))
        with pytest.raises(ConfigError, match="belongs to another run") as error:
            evaluation.evaluate_run(tmp_path / "run")
        assert words in str(error.value) and "\n" not in str(error.value)


def test_render_draws_every_world_step_of_one_greedy_episode(tmp_path):
    from PIL import Image

    from qmix.render import render_run

    config = build_config(preset="default", map="3m", episode_limit=3)
    trainer = make_trainer(config)
    write_run(tmp_path / "run", config, [fixed_choice_params(trainer, 4)])
    episode = render_run(tmp_path / "run", tmp_path / "episode.gif", seed=2)
    world_steps = trainer.env.smax.world_steps_per_env_step
    assert (episode.steps, episode.frames, episode.won) == (3, 3 * world_steps, False)
    with Image.open(tmp_path / "episode.gif") as gif:
        assert gif.n_frames == 3 * world_steps
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no partial file left


def test_render_refuses_what_it_cannot_draw_in_one_line(tmp_path, two_step_config):
    from qmix.render import render_run

    trainer = make_trainer(two_step_config)
    write_run(tmp_path / "run", two_step_config, [fixed_choice_params(trainer, 0)] * 2)
    with pytest.raises(ConfigError, match=r"`qmix render` cannot draw .*'two_step' .*does not offer render"):
        render_run(tmp_path / "run")
    config = build_config(preset="default", map="3m")
    write_run(tmp_path / "smax", config, [make_trainer(config).algorithm.init(jax.random.PRNGKey(0)).params])
    with pytest.raises(ConfigError, match="--out must name a .gif file"):
        render_run(tmp_path / "smax", tmp_path / "episode.mp4")
    with pytest.raises(ConfigError, match="--run must be between 0 and 0"):
        render_run(tmp_path / "smax", run=1)


def test_the_newest_checkpoint_can_be_evaluated_and_equals_the_final_parameters_at_the_end(tmp_path):
    from qmix.build import make_trainer
    from qmix.run import train

    # a trainer of the same programs, kept from another run with other seeds and schedules: what is read
    # from this run's folder must follow this run's settings, never the kept trainer's (build.make_trainer)
    make_trainer(build_config(preset="two_step", seed=7))
    config = build_config(preset="two_step", num_seeds=2, env_steps=400, checkpoint_interval_env_steps=200,
                          test_interval_episodes=100)
    train(config, tmp_path / "run", progress=False, tensorboard=False)  # checkpoints at 200 and 400 (the end)
    final = evaluation.evaluate_run(tmp_path / "run", episodes=8, write=False)
    for folder in seed_folders(tmp_path / "run", config):
        (folder / "params.msgpack").unlink()  # as if the run had been stopped after its last checkpoint
    from_checkpoint = evaluation.evaluate_run(tmp_path / "run", episodes=8, from_checkpoint=True)
    assert (final.params, from_checkpoint.params) == ("final", "checkpoint 400")
    assert from_checkpoint.runs == final.runs
    with pytest.raises(ConfigError, match="no final parameters .*or evaluate its newest checkpoint with --checkpoint"):
        evaluation.evaluate_run(tmp_path / "run")
    # an earlier checkpoint: the newest at or before the step named, written to a file of its own
    earlier = evaluation.evaluate_run(tmp_path / "run", episodes=8, checkpoint_step=399)
    assert earlier.params == "checkpoint 200"
    written = sorted(path.name for path in (tmp_path / "run").glob("evaluation*.json"))
    assert written == ["evaluation_checkpoint_200.json", "evaluation_checkpoint_400.json"]
    with pytest.raises(ConfigError, match="no checkpoint at or before env step 199 .*keeps 200, 400"):
        evaluation.evaluate_run(tmp_path / "run", checkpoint_step=199)
