"""average_policy: an exponential moving average of the agent network, tested and saved beside the run."""

import dataclasses
import json

import jax
import numpy as np
import pytest

from qmix import evaluate as evaluation
from qmix.build import make_trainer
from qmix.config import ConfigError, build_config
from qmix.learn.rollout import run_episodes
from qmix.run import train
from qmix.run_folder import parameter_file, seed_folders


def random_episodes(trainer, key, n_episodes=8):
    """Whole episodes of the two-step game played at random: a batch for the learner."""
    algorithm = trainer.algorithm

    @jax.jit  # one program, not an op-by-op compile of the rollout
    def play(key):
        params = algorithm.init(jax.random.PRNGKey(1)).params
        policy = algorithm.greedy(params.agent).replace(epsilon=1.0)  # every action at random
        return run_episodes(algorithm, trainer.env, policy, key, n_episodes)[0]

    return play(key)


def test_the_average_moves_a_quarter_of_the_way_to_the_online_network_after_each_update():
    trainer = make_trainer(build_config(preset="two_step", average_policy=True, policy_average_tau=0.25))
    learner = trainer.algorithm
    state = learner.init(jax.random.PRNGKey(0))
    online = [state.params.agent]
    update = jax.jit(learner.update)
    for i in range(2):
        state, _, _ = update(state, random_episodes(trainer, jax.random.PRNGKey(10 + i)), jax.random.PRNGKey(i))
        online.append(state.params.agent)
    # By hand: a1 = 0.75 p0 + 0.25 p1; a2 = 0.75 a1 + 0.25 p2 = 0.5625 p0 + 0.1875 p1 + 0.25 p2
    expected = jax.tree.map(lambda p0, p1, p2: 0.5625 * p0 + 0.1875 * p1 + 0.25 * p2, *online)
    for got, want, last in zip(jax.tree.leaves(state.average_agent), jax.tree.leaves(expected),
                               jax.tree.leaves(online[-1]), strict=True):
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-5, atol=1e-7)
        assert not np.allclose(np.asarray(got), np.asarray(last))  # an average, not a copy
    assert jax.tree.leaves(state.params.mixer)  # the mixer is trained as usual and not averaged


def test_averaging_off_keeps_no_average_and_on_starts_it_at_the_online_network():
    state = make_trainer(build_config(preset="two_step")).algorithm.init(jax.random.PRNGKey(0))
    assert state.average_agent is None
    assert [f.name for f in dataclasses.fields(state)] == ["params", "target_params", "opt_state",
                                                           "last_target_update_episode", "average_agent"]
    averaging = make_trainer(build_config(preset="two_step", average_policy=True,
                                     policy_average_tau=0.1)).algorithm.init(jax.random.PRNGKey(0))
    for got, want in zip(jax.tree.leaves(averaging.average_agent), jax.tree.leaves(averaging.params.agent), strict=True):
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))  # the average starts at the online network


def test_a_run_logs_paired_tests_of_the_average_and_evaluate_plays_it(tmp_path):
    config = build_config(preset="two_step", num_seeds=2, env_steps=400, checkpoint_interval_env_steps=200,
                          test_interval_episodes=100, average_policy=True, policy_average_tau=0.05)
    train(config, tmp_path / "run", progress=False, tensorboard=False)
    for folder in seed_folders(tmp_path / "run", config):
        records = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
        for record in records:
            # the two-step game has no win: its averaged network is tested on its return
            assert 0.0 <= record["test_return_averaged"] <= 8.0 and "test_win_rate_averaged" not in record
        assert (folder / parameter_file("averaged_agent")).stat().st_size > 0

    online = evaluation.evaluate_run(tmp_path / "run", episodes=8, write=False)
    final = evaluation.evaluate_run(tmp_path / "run", episodes=8, averaged=True)
    assert (tmp_path / "run" / evaluation.AVERAGED_RESULT_FILE).is_file()
    assert not (tmp_path / "run" / evaluation.RESULT_FILE).exists()  # the online evaluation was not written
    from_checkpoint = evaluation.evaluate_run(tmp_path / "run", episodes=8, write=False, from_checkpoint=True,
                                              averaged=True)
    assert (online.params, final.params, from_checkpoint.params) == ("final", "final averaged",
                                                                     "checkpoint 400 averaged")
    assert from_checkpoint.runs == final.runs  # the checkpoint at the end holds the same averaged networks


def test_averaged_evaluation_of_a_run_without_an_average_and_a_bad_weight_are_clear_errors(tmp_path):
    config = build_config(preset="two_step", env_steps=200, test_interval_episodes=100)
    train(config, tmp_path / "run", progress=False, tensorboard=False)
    with pytest.raises(ConfigError, match="kept no averaged agent network .*average_policy=true"):
        evaluation.evaluate_run(tmp_path / "run", averaged=True)
    with pytest.raises(ConfigError, match=r"policy_average_tau must be in \[0, 1\], got 1.5"):
        build_config(preset="two_step", policy_average_tau=1.5)
