"""The QMIX family past the paper (CW-QMIX, OW-QMIX, QPLEX, COMA, PQN-QMIX, PQN-VDN) through the commands: the matrix game
for every algorithm, and on a StarCraft map train, evaluate, render, plot and a sweep."""

import json

import numpy as np
import pytest

from command_line import qmix_cli

NEW_METHODS = ["cw_qmix", "ow_qmix", "qplex", "coma", "pqn_qmix", "pqn_vdn"]
TINY = ("--no-progress", "--env-steps", "300", "num_envs=2", "test_interval_env_steps=150", "test_episodes=2",
        "final_evaluation_episodes=4")


@pytest.mark.slow  # two compiles (the pieces are in the default set: test_two_step reads games the same way)
def test_the_matrix_game_prints_joint_values_or_says_there_are_none(capsys):
    code, out, err = qmix_cli(capsys, "matrix-game", "--alg", "cw_qmix", "--alg", "coma", "--seeds", "1",
                              "--episodes", "40")
    assert code == 0, err
    assert "matrix game, cw_qmix" in out and "matrix game, coma" in out and "no joint values" in out
    assert "greedy joint action" in out


@pytest.mark.slow  # ~2 minutes: 5 seeds of each of four algorithms, 5000 episodes
def test_weighted_qmix_finds_the_optimum_that_vdn_misses():
    from qmix.matrix_game import finds_the_optimum, run_matrix_game

    for alg in ("cw_qmix", "ow_qmix"):
        runs = run_matrix_game(alg, seed=0, num_seeds=5)
        assert sum(map(finds_the_optimum, runs)) >= 4, [(r.greedy_actions, r.q_tot[0, 0, 0]) for r in runs]
    vdn = run_matrix_game("vdn", seed=0, num_seeds=5)
    assert not any(map(finds_the_optimum, vdn)), [r.greedy_actions for r in vdn]


@pytest.mark.slow  # a StarCraft compile per algorithm
@pytest.mark.parametrize("alg", NEW_METHODS)
def test_each_new_method_trains_evaluates_renders_and_plots_on_a_starcraft_map(alg, tmp_path, capsys):
    run = tmp_path / alg
    pqn = ("minibatches=2", "rollout_steps=32") if alg.startswith("pqn") else ()  # the preset's 4 need 4 envs
    code, out, err = qmix_cli(capsys, "train", "--alg", alg, "--map", "3m", "--out", str(run), *TINY,
                              "agent_hidden_dim=8", *pqn)
    assert code == 0, err
    assert f"{alg} on 3m" in out and "win rate" in out
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert all(np.isfinite(r["test_return"]) for r in records)
    code, out, err = qmix_cli(capsys, "evaluate", str(run), "--episodes", "4")
    assert code == 0 and "win rate" in out, err
    code, out, err = qmix_cli(capsys, "render", str(run), "--out", str(tmp_path / "episode.gif"))
    assert code == 0 and (tmp_path / "episode.gif").stat().st_size > 0, err
    code, out, err = qmix_cli(capsys, "plot", str(run), "--out", str(tmp_path / "curve"))
    assert code == 0 and (tmp_path / "curve.png").is_file(), err


@pytest.mark.slow
def test_the_new_methods_run_in_a_sweep_with_their_evaluations(tmp_path, capsys):
    spec = tmp_path / "sweep.yaml"
    spec.write_text(f"""
maps: [two_step]
algs: [{", ".join(NEW_METHODS)}]
seeds: 1
preset: two_step
env_steps: 200
evaluate_episodes: 2
out: {tmp_path / "sweep"}
""")
    code, out, err = qmix_cli(capsys, "sweep", str(spec), "--cpus", "1", "--no-progress")
    assert code == 0, out + err
    for alg in NEW_METHODS:
        assert next((tmp_path / "sweep").glob(f"two_step-{alg}*/**/evaluation.json")).is_file()
