"""Wrong input gets one clear line and exit code 2, never a traceback."""

import json
import shutil

import pytest

from command_line import qmix_cli


def run_cli(argv, capsys):
    code, out, err = qmix_cli(capsys, *argv)
    return code, out + err


@pytest.fixture
def bad_yaml(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("lr: [0.1\n")
    return str(path)


@pytest.fixture
def occupied_run(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text('{"env_steps": 0}\n')
    return str(run)


@pytest.fixture
def runs_to_resume(tmp_path):
    """Folders `--resume` must refuse: not a run, a run without checkpoints, a run whose checkpoints are broken."""
    from qmix.checkpoint import CHECKPOINT_FOLDER, MARKER
    from qmix.config import build_config, config_to_yaml

    not_a_run = tmp_path / "not_a_run"
    not_a_run.mkdir()
    no_checkpoint = tmp_path / "no_checkpoint"
    no_checkpoint.mkdir()
    (no_checkpoint / "config.yaml").write_text(config_to_yaml(build_config(preset="default", env_steps=600)))
    broken = tmp_path / "broken"
    shutil.copytree(no_checkpoint, broken)
    unfinished = broken / CHECKPOINT_FOLDER / "200" / "runner"  # killed before its marker was written
    unfinished.mkdir(parents=True)
    (unfinished / "d").write_bytes(b"\0" * 64)
    truncated = broken / CHECKPOINT_FOLDER / "400"
    shutil.copytree(unfinished.parent, truncated)
    files = {"runner/d": {"bytes": 128, "sha256": "0" * 64}}
    (truncated / MARKER).write_text(json.dumps({"format": 1, "step": 400, "files": files}))
    multi_seed = tmp_path / "multi_seed"  # a --seeds 2 run, and the folder of its second seed
    (multi_seed / "seed_1").mkdir(parents=True)
    for folder in (multi_seed, multi_seed / "seed_1"):
        (folder / "config.yaml").write_text(config_to_yaml(build_config(preset="default", env_steps=600, num_seeds=2)))
    a_file = tmp_path / "a_file.txt"
    a_file.write_text("not a folder\n")
    not_utf8 = tmp_path / "not_utf8"
    shutil.copytree(no_checkpoint, not_utf8)
    (not_utf8 / "config.yaml").write_bytes(b"config_format: 2\nmap: 3m\xff\xfe\n")
    return {"NOT_A_RUN": str(not_a_run), "NO_CHECKPOINT": str(no_checkpoint), "BROKEN_RUN": str(broken),
            "A_FILE": str(a_file), "BELOW_A_FILE": str(a_file / "run"), "NOT_UTF8": str(not_utf8),
            "NOT_UTF8_CONFIG": str(not_utf8 / "config.yaml"), "A_FOLDER": str(not_a_run),
            "SEED_FOLDER": str(multi_seed / "seed_1")}


@pytest.fixture(scope="module")
def finished_runs(tmp_path_factory):
    """A finished two-step run (final parameters, checkpoints at 200 and 400 env steps) and damaged copies."""
    from qmix.config import build_config
    from qmix.run import train

    root = tmp_path_factory.mktemp("finished")
    good = root / "good"
    train(build_config(preset="two_step", env_steps=400, checkpoint_interval_env_steps=200, test_interval_episodes=100),
          good, progress=False, tensorboard=False)
    corrupt = root / "corrupt_params"
    shutil.copytree(good, corrupt)
    with open(corrupt / "params.msgpack", "r+b") as f:
        f.seek(64)
        f.write(b"\x7f" * 8)  # eight bytes overwritten inside the weights
    unchecked = root / "no_manifest"
    shutil.copytree(good, unchecked)
    (unchecked / "parameters.json").unlink()
    pruned = root / "no_checkpoints"  # finished, then its checkpoints removed to save space
    shutil.copytree(good, pruned)
    shutil.rmtree(pruned / "checkpoints")
    return {"FINISHED": str(good), "CORRUPT_PARAMS": str(corrupt), "NO_MANIFEST": str(unchecked),
            "PRUNED": str(pruned)}


BAD_INPUTS = [
    # (argv, words the message must contain)
    (["train", "lrr=0.1"], ["unknown setting 'lrr'", "did you mean 'lr'"]),
    (["train", "lr=-1"], ["lr must be a positive", "-1"]),
    (["train", "epsilon_start=1.5"], ["epsilon_start", "[0, 1]"]),
    (["train", "epsilon_finish=-0.1"], ["epsilon_finish", "[0, 1]"]),
    (["train", "batch_size=64", "buffer_size_episodes=32"], ["batch_size", "larger than the replay"]),
    (["train", "--map", "3mm"], ["unknown map '3mm'", "did you mean '3m'", "2s3z"]),
    (["train", "--alg", "qmixx"], ["unknown algorithm 'qmixx'", "vdn"]),
    (["train", "batch_size=abc"], ["batch_size", "whole number"]),
    (["train", "batch_size=3.5"], ["batch_size", "whole number"]),
    (["train", "double_q=maybe"], ["double_q", "true or false"]),
    (["train", "lr"], ["not key=value"]),
    (["train", "gamma=1.5"], ["gamma", "[0, 1]"]),
    (["train", "td_lambda=2"], ["td_lambda", "[0, 1]"]),
    (["train", "num_envs=0"], ["num_envs must be at least 1"]),
    (["train", "hypernet_layers=3"], ["hypernet_layers must be 1 or 2"]),
    (["train", "reward=dense"], ["reward must be one of smac, smac_signed, smax"]),
    (["train", "--preset", "fast"], ["unknown preset 'fast'", "pymarl"]),
    (["train", "--config", "/nonexistent/settings.yaml"], ["config file", "does not exist"]),
    (["train", "--config", "BAD_YAML"], ["not valid YAML"]),
    (["train", "--out", "FINISHED", "--env-steps", "10"], ["already holds a run", "--force"]),
    (["train", "--out", "OCCUPIED", "--env-steps", "10"], ["holds files but no config.yaml", "--force"]),
    (["train", "--seeds", "many"], ["--seeds", "integer"]),
    (["train", "test_interval_env_steps=0", "test_interval_episodes=0"], ["test_interval"]),
    (["heuristic", "--map", "9z"], ["unknown map '9z'"]),
    (["heuristic", "--map", "two_step"], ["heuristic baseline cannot play 'two_step'", "does not offer heuristic",
                                          "3m"]),
    (["train", "final_evaluation_episodes=-1"], ["final_evaluation_episodes must not be negative"]),
    (["two-step", "--alg", "no_such_alg"], ["unknown algorithm 'no_such_alg'"]),
    (["plot", "/nonexistent/runs"], ["does not exist"]),
    (["train", "--resume", "/nonexistent/run"], ["run folder '/nonexistent/run' does not exist"]),
    (["train", "--resume", "NOT_A_RUN"], ["is not a run folder", "config.yaml"]),
    (["train", "--resume", "BROKEN_RUN"], ["no usable checkpoint", "400", "truncated", "200", "unfinished"]),
    (["train", "--resume", "NO_CHECKPOINT", "--map", "8m"], ["only env_steps", "map ('3m' -> '8m')"]),
    (["train", "--resume", "NO_CHECKPOINT", "lr=0.1"], ["only env_steps", "lr (0.001 -> 0.1)"]),
    (["train", "--resume", "NO_CHECKPOINT", "--preset", "pymarl"], ["--preset cannot be used with --resume"]),
    (["train", "--resume", "NO_CHECKPOINT", "--out", "elsewhere"], ["--out cannot be used with --resume"]),
    (["evaluate", "/nonexistent/run"], ["run folder '/nonexistent/run' does not exist"]),
    (["evaluate", "NOT_A_RUN"], ["is not a run folder", "config.yaml"]),
    (["evaluate", "NO_CHECKPOINT"], ["no final parameters", "qmix train --resume"]),
    (["evaluate", "NO_CHECKPOINT", "--episodes", "0"], ["--episodes must be at least 1"]),
    (["evaluate", "NO_CHECKPOINT", "--checkpoint"], ["no checkpoint in", "no_checkpoint"]),
    (["evaluate", "BROKEN_RUN", "--checkpoint"], ["no usable checkpoint", "400", "truncated"]),
    (["evaluate", "BROKEN_RUN", "--checkpoint-step", "100"], ["no checkpoint at or before env step 100", "keeps"]),
    # values that would be accepted and silently do something else
    (["train", "lr=inf"], ["lr must be a positive, finite number", "inf"]),
    (["train", "lr=.nan"], ["lr must be a positive, finite number"]),
    (["train", "lr_schedule=linear", "lr=0.001", "lr_finish=0.01"], ["lr_finish (0.01) is above lr (0.001)"]),
    (["train", "lr_schedule=cosine"], ["lr_schedule must be one of constant, linear"]),
    (["train", "target_update=polyak"], ["target_update must be one of hard, soft"]),
    (["train", "grad_norm_clip=0"], ["grad_norm_clip must be positive", "null"]),
    (["train", "policy_average_tau=0.01"], ["'policy_average_tau' applies only with average_policy=true"]),
    (["train", "target_update_tau=0.01"], ["'target_update_tau' applies only with target_update=soft"]),
    (["train", "lr_anneal_updates=1000"], ["'lr_anneal_updates' applies only with lr_schedule=linear"]),
    (["train", "--seed", "-1"], ["seed must be in [0,", "got -1"]),
    (["train", "--seed", "99999999999"], ["seed must be in [0,", "99999999999"]),
    (["train", "--seeds", "3", "--seed", "4294967294"], ["seed must be in [0, 4294967293]"]),
    (["train", "--env-steps", "3000000000"], ["env_steps must be below", "int32"]),
    (["train", "episode_limit=0"], ["episode_limit must be at least 1 step"]),
    (["train", "--map", "two_step", "reward=smac"], ["unknown setting 'reward'", "--map two_step"]),
    (["train", "--map", "8m", "buffer_size_episodes=100000000"], ["the replay needs about", "GiB", "lower buffer_size_episodes"]),
    # folders and files that cannot be what they are given as
    (["train", "--out", "A_FILE", "--env-steps", "10"], ["is a file; name a folder"]),
    (["train", "--out", "BELOW_A_FILE", "--env-steps", "10"], ["which is a file; name a folder"]),
    (["train", "--resume", "A_FILE"], ["is a file, not a run folder"]),
    (["train", "--config", "A_FOLDER"], ["is a folder, not a YAML file"]),
    (["train", "--config", "NOT_UTF8_CONFIG"], ["is not UTF-8 text"]),
    (["train", "--resume", "NOT_UTF8"], ["is not UTF-8 text"]),
    (["evaluate", "NOT_UTF8"], ["is not UTF-8 text"]),
    (["render", "NOT_UTF8"], ["is not UTF-8 text"]),
    (["config", "--preset", "nope"], ["unknown preset 'nope'"]),
    (["config", "--alg", "no_such_alg"], ["unknown algorithm 'no_such_alg'"]),
    # damaged or mismatched results of a finished run
    (["evaluate", "CORRUPT_PARAMS"], ["does not match its checksum", "--checkpoint"]),
    (["evaluate", "NO_MANIFEST"], ["has no checksum", "parameters.json"]),
    (["reproduce", "--seed-group", "0"], ["--seed-group must be at least 1"]),
    (["reproduce", "--out", "same", "--keep", "same"], ["is the --out folder itself", "another folder"]),
    (["train", "--resume", "FINISHED", "--env-steps", "200"], ["has trained 400 env steps", "at least 400"]),
    # one seed's folder of a --seeds K run is not a run of its own
    *[([*command, "SEED_FOLDER", *extra], ["one seed's folder of the --seeds run", "multi_seed'"])
      for command, extra in ((["evaluate"], []), (["render"], []), (["train", "--resume"], []),
                             (["train", "--out"], ["--env-steps", "10"]))],
    # a finished run whose checkpoints were removed: no hint to resume it, none to overwrite it unawares
    (["train", "--resume", "PRUNED", "--env-steps", "800"], ["finished run whose checkpoints were removed",
                                                             "another folder"]),
    (["train", "--out", "PRUNED", "--env-steps", "10"], ["finished run whose checkpoints were removed",
                                                         "overwrite it and its final parameters"]),
]


@pytest.mark.parametrize("argv, words", BAD_INPUTS, ids=[" ".join(a) for a, _ in BAD_INPUTS])
def test_bad_input_gets_one_clear_line_and_exit_code_2(argv, words, capsys, bad_yaml, occupied_run, runs_to_resume,
                                                       finished_runs):
    placeholders = {"BAD_YAML": bad_yaml, "OCCUPIED": occupied_run, **runs_to_resume, **finished_runs}
    argv = [placeholders.get(a, a) for a in argv]
    code, output = run_cli(argv, capsys)
    assert code == 2, output
    assert "Traceback" not in output
    errors = [line for line in output.splitlines() if line.startswith("qmix: error:")]
    assert len(errors) == 1 and output.strip().splitlines()[-1] == errors[0], output  # one line, last
    for word in words:
        assert word in output, f"{word!r} not in {output!r}"


def test_the_table_tries_every_kind_of_bad_input():
    assert len(BAD_INPUTS) >= 70, len(BAD_INPUTS)


def test_config_lists_every_setting(capsys):
    code, output = run_cli(["config", "--preset", "pymarl"], capsys)
    assert code in (0, None)
    assert "target_update_interval_episodes: 200" in output and "lr: 0.0005" in output


def test_maps_are_listed_by_suite_each_once(capsys):
    from qmix.envs import ENVIRONMENTS

    code, out = run_cli(["maps"], capsys)
    assert code == 0
    headings = [line for line in out.splitlines() if not line.startswith(" ")]
    assert headings == ["matrix games:", "SMAX (jaxmarl):", "MPE (jaxmarl):", "Level-Based Foraging (jumanji):",
                        "Robotic Warehouse (jumanji):"]
    listed = [line.split()[0] for line in out.splitlines() if line.startswith(" ")]
    assert listed[2:8] == ["3m", "5m", "8m", "2s3z", "3s5z", "1c3s5z"]  # the paper's maps first in SMAX
    assert sorted(listed) == sorted(ENVIRONMENTS.names())
