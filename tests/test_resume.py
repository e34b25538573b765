"""Runs that survive: kill and resume equals uninterrupted, resume without replay, the NaN guard, determinism.

One tiny 3m config and one Trainer (compiled once) serve every test here.
"""

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import yaml

from golden_runs import TINY_SMAX
from qmix import cli
from qmix.algorithms.value_decomposition.algorithm import Params, ValueDecompositionState
from qmix.build import make_trainer, new_trainer
from qmix.checkpoint import CHECKPOINT_FOLDER, MARKER
from qmix.config import build_config
from qmix.errors import NonFiniteError
from qmix.run import WALL_CLOCK_FIELDS, resume, train
from qmix.session import finite_runs
from qmix.stopping import StopRequested

# The golden runs' tiny 3m program (test_golden and test_train compile it too), here with checkpoints: about
# 36 episodes of 3m; the replay (16 episodes) wraps around, the target network is copied several times, and
# checkpoints fall at roughly 200 and 400 env steps and at the end.
TINY = dict(TINY_SMAX, env_steps=600, test_interval_env_steps=200, checkpoint_interval_env_steps=200,
            keep_checkpoints=2, save_replay=True)
QUIET = dict(progress=False, tensorboard=False)


class Killed(Exception):
    """Stands in for SIGKILL in-process: raised from the checkpoint hook, so nothing after it runs."""


def kill_at_checkpoint(n):
    seen = []

    def hook(path):
        seen.append(path)
        if len(seen) == n:
            raise Killed(path)

    return hook


def metrics(run_dir):
    """Every logged record but the wall-clock fields (the only ones that may differ between two runs)."""
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k not in WALL_CLOCK_FIELDS} for line in lines]


def checkpoint_steps(run_dir):
    return sorted(int(p.name) for p in (run_dir / CHECKPOINT_FOLDER).iterdir() if (p / MARKER).is_file())


def assert_same_run(run_dir, reference):
    assert metrics(run_dir) == metrics(reference)
    assert (run_dir / "params.msgpack").read_bytes() == (reference / "params.msgpack").read_bytes()


@pytest.fixture(scope="module")
def config():
    return build_config(preset="default", **TINY)


@pytest.fixture(scope="module")
def trainer(config):
    return make_trainer(config)


@pytest.fixture(scope="module")
def uninterrupted(config, trainer, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("uninterrupted") / "run"
    train(config, run_dir, trainer=trainer, **QUIET)
    return run_dir


@pytest.fixture(scope="module")
def poisoned(config, trainer):
    """A trainer of its own (the one make_trainer shares must stay clean) whose loss is NaN from update
    `poison["from_update"]` on. Only the learner update is poisoned (the rest reuses the clean trainer's
    compiled programs), and the update reads that number from Python as it runs, so one compiled loop
    serves every poisoned test."""
    poisoned, poison = new_trainer(config), {"from_update": 0}
    poisoned.init_runs = trainer.init_runs
    poisoned.evaluate_runs = trainer.evaluate_runs
    clean_update = poisoned.algorithm._update

    def update_with_nan_loss(state, batch):
        new_state, metrics_ = clean_update(state, batch)
        updates_done = optax.tree_utils.tree_get_all_with_path(state.opt_state, "count")[0][1]
        from_update = jax.pure_callback(lambda: np.int32(poison["from_update"]),
                                        jax.ShapeDtypeStruct((), jnp.int32), vmap_method="broadcast_all")
        loss = jnp.where(updates_done >= from_update, jnp.nan, metrics_["loss"])
        return new_state, {**metrics_, "loss": loss}

    poisoned.algorithm._update = update_with_nan_loss
    return poisoned, poison


def test_the_reference_run_checkpoints_on_schedule(uninterrupted, config):
    steps = [r["env_steps"] for r in metrics(uninterrupted)]
    assert steps[-1] >= config.env_steps
    crossings = [s for prev, s in zip(steps, steps[1:], strict=False) if s // 200 > prev // 200]
    assert checkpoint_steps(uninterrupted) == crossings[-config.keep_checkpoints:]


def test_two_runs_with_one_seed_give_identical_metrics(uninterrupted, config, trainer, tmp_path):
    train(config, tmp_path / "again", trainer=trainer, **QUIET)
    assert_same_run(tmp_path / "again", uninterrupted)


def test_a_run_killed_after_its_last_checkpoint_finishes_when_resumed_to_its_own_budget(
        uninterrupted, config, trainer, tmp_path):
    # A run's last checkpoint may overshoot its budget (whole iterations); a sweep's retry names the
    # budget. Here the copy says its budget was 10 env steps short of where its last checkpoint stands.
    run_dir = tmp_path / "run"
    shutil.copytree(uninterrupted, run_dir)
    budget = metrics(run_dir)[-1]["env_steps"] - 10
    saved = yaml.safe_load((run_dir / "config.yaml").read_text())
    (run_dir / "config.yaml").write_text(yaml.safe_dump({**saved, "env_steps": budget}, sort_keys=False))
    for name in ("params.msgpack", "parameters.json"):
        (run_dir / name).unlink()  # killed between the last checkpoint and the final parameters
    resume(run_dir, {"env_steps": budget}, trainer=trainer, **QUIET)
    assert_same_run(run_dir, uninterrupted)


def test_a_killed_and_resumed_run_equals_the_uninterrupted_one(uninterrupted, config, trainer, tmp_path, capsys):
    run_dir = tmp_path / "run"
    with pytest.raises(Killed):
        train(config, run_dir, trainer=trainer, on_checkpoint=kill_at_checkpoint(1), **QUIET)
    assert not (run_dir / "params.msgpack").exists()
    resume(run_dir, trainer=trainer, **QUIET)
    assert_same_run(run_dir, uninterrupted)
    assert "warning" not in capsys.readouterr().err


def test_a_stop_part_way_through_a_long_chunk_checkpoints_there_and_resumes_exactly(
        config, trainer, tmp_path, monkeypatch):
    # One test point, at the end: a stop honoured only between test points would wait for the whole run.
    # Training runs in calls of a bounded number of iterations; SIGTERM arrives during the second call.
    one_chunk = dataclasses.replace(config, test_interval_env_steps=600, checkpoint_interval_env_steps=600)
    reference = tmp_path / "reference"
    train(one_chunk, reference, trainer=trainer, **QUIET)
    calls, train_chunk = [], trainer.train_chunk

    def signalled_during_the_second_call(*args):
        calls.append(None)
        if len(calls) == 2:
            os.kill(os.getpid(), signal.SIGTERM)  # recorded by the run's handler, seen when the call returns
        return train_chunk(*args)

    monkeypatch.setattr(trainer, "train_chunk", signalled_during_the_second_call)
    run_dir = tmp_path / "run"
    with pytest.raises(StopRequested) as stopped:
        train(one_chunk, run_dir, trainer=trainer, **QUIET)
    assert stopped.value.exit_code == 143 and len(calls) == 2
    [step] = checkpoint_steps(run_dir)
    assert 0 < step < 600 and [r["env_steps"] for r in metrics(run_dir)] == [0]  # part-way: no test yet
    monkeypatch.undo()
    resume(run_dir, trainer=trainer, **QUIET)
    assert_same_run(run_dir, reference)


def test_a_stop_part_way_never_checkpoints_what_the_nan_guard_has_not_seen(config, poisoned, tmp_path, monkeypatch):
    one_chunk = dataclasses.replace(config, test_interval_env_steps=600, checkpoint_interval_env_steps=600)
    poisoned, poison = poisoned
    monkeypatch.setitem(poison, "from_update", 0)  # every loss is NaN
    sent, train_chunk = [], poisoned.train_chunk

    def signalled_once_learning_began(runners, *args):
        if int(runners.updates[0]) > 0 and not sent:
            sent.append(int(runners.env_steps[0]))
            os.kill(os.getpid(), signal.SIGTERM)  # seen when this call returns, part-way through the chunk
        return train_chunk(runners, *args)

    monkeypatch.setattr(poisoned, "train_chunk", signalled_once_learning_began)
    run_dir = tmp_path / "run"
    with pytest.raises(NonFiniteError, match="non-finite loss") as stopped:
        train(one_chunk, run_dir, trainer=poisoned, **QUIET)
    assert sent and int(str(stopped.value).split("at env step ")[1].split()[0].replace(",", "")) < 600  # part-way
    assert checkpoint_steps(run_dir) == []  # stopped by the guard, not checkpointed


def test_unfinished_and_corrupt_checkpoints_are_skipped_and_the_run_still_ends_the_same(
    uninterrupted, config, trainer, tmp_path, capsys
):
    run_dir = tmp_path / "run"
    with pytest.raises(Killed):
        train(config, run_dir, trainer=trainer, on_checkpoint=kill_at_checkpoint(2), **QUIET)
    first, second = checkpoint_steps(run_dir)
    replay_files = [p for p in (run_dir / CHECKPOINT_FOLDER / str(second) / "replay").rglob("*") if p.is_file()]
    biggest = max(replay_files, key=lambda p: p.stat().st_size)
    biggest.write_bytes(biggest.read_bytes()[:100])  # truncated
    (run_dir / CHECKPOINT_FOLDER / f"{second + 50}.orbax-checkpoint-tmp" / "runner").mkdir(parents=True)  # half written

    resume(run_dir, trainer=trainer, **QUIET)
    warnings = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert len(warnings) == 1 and f"checkpoints/{second}" in warnings[0] and "truncated" in warnings[0]
    assert_same_run(run_dir, uninterrupted)  # lines logged after the first checkpoint were dropped and redone
    assert checkpoint_steps(run_dir) == checkpoint_steps(uninterrupted)
    assert sorted(p.name for p in (run_dir / CHECKPOINT_FOLDER).iterdir()) == [str(s) for s in checkpoint_steps(run_dir)]


def test_resume_without_the_replay_continues_and_warns(uninterrupted, config, trainer, tmp_path, capsys):
    run_dir = tmp_path / "run"
    without_replay = dataclasses.replace(config, save_replay=False)
    with pytest.raises(Killed):
        train(without_replay, run_dir, trainer=trainer, on_checkpoint=kill_at_checkpoint(1), **QUIET)
    at_checkpoint = metrics(run_dir)[-1]
    assert not (run_dir / CHECKPOINT_FOLDER / str(at_checkpoint["env_steps"]) / "replay").exists()

    summary = resume(run_dir, trainer=trainer, **QUIET)
    warnings = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "replay buffer was not restored" in warnings[0]
    records = metrics(run_dir)
    n = len([r for r in records if r["env_steps"] <= at_checkpoint["env_steps"]])
    assert records[:n] == metrics(uninterrupted)[:n]
    after = records[n]
    reference = metrics(uninterrupted)[n]
    assert after["env_steps"] > at_checkpoint["env_steps"] and summary.env_steps[0] >= config.env_steps
    # The learner carried on (its update counter was restored) but paused while the replay refilled.
    assert at_checkpoint["updates"] <= after["updates"] < reference["updates"]
    assert after["epsilon"] == pytest.approx(float(trainer.algorithm.epsilon(after["env_steps"])))
    assert records[-1]["updates"] > at_checkpoint["updates"]


def test_resume_can_raise_the_budget(uninterrupted, config, trainer, tmp_path, capsys):
    run_dir = tmp_path / "run"
    shutil.copytree(uninterrupted, run_dir)
    before = metrics(run_dir)
    resume(run_dir, trainer=trainer, **QUIET)  # already done: nothing to train, nothing changes
    assert metrics(run_dir) == before
    assert "already reached its budget" in capsys.readouterr().err

    summary = resume(run_dir, {"env_steps": 800}, trainer=trainer, **QUIET)
    assert summary.env_steps[0] >= 800
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["env_steps"] == 800
    assert metrics(run_dir)[: len(before)] == before and len(metrics(run_dir)) > len(before)


def test_a_non_finite_loss_stops_the_run_and_keeps_the_last_checkpoint(uninterrupted, config, trainer, poisoned,
                                                                      tmp_path, monkeypatch):
    poisoned, poison = poisoned
    # poisoned from the second update after the first checkpoint: before the second one
    poison_from_update = next(r["updates"] for r in metrics(uninterrupted) if r["env_steps"] >= 200) + 1
    monkeypatch.setitem(poison, "from_update", poison_from_update)
    run_dir = tmp_path / "run"
    with pytest.raises(NonFiniteError) as error:
        train(config, run_dir, trainer=poisoned, **QUIET)

    message = str(error.value)
    [last_good] = checkpoint_steps(run_dir)
    assert "non-finite loss at env step" in message and "run 0, seed 0" in message
    assert message.endswith(f"last good checkpoint: {(run_dir / CHECKPOINT_FOLDER / str(last_good)).absolute()}")
    assert not (run_dir / "params.msgpack").exists()
    assert metrics(run_dir)[-1]["env_steps"] == last_good  # the poisoned chunk was not logged
    # The last good checkpoint is intact: resumed with the clean learner, the run ends as if never poisoned.
    resume(run_dir, trainer=trainer, **QUIET)
    assert_same_run(run_dir, uninterrupted)


def test_the_guard_checks_every_parameter_of_every_run():
    def params(value):
        return Params(agent={"w": jnp.full((2, 3), value)}, mixer={"b": jnp.ones((2, 1))})

    state = ValueDecompositionState(params(1.0), params(1.0), (), jnp.zeros((2,), jnp.int32))
    assert np.asarray(finite_runs(state)).tolist() == [True, True]
    broken = state.replace(target_params=Params(agent={"w": jnp.array([[1.0, 1, 1], [1, jnp.inf, 1]])},
                                                mixer={"b": jnp.ones((2, 1))}))
    assert np.asarray(finite_runs(broken)).tolist() == [True, False]


def test_the_command_line_reports_a_non_finite_run_in_one_line_with_exit_code_3(monkeypatch, capsys):
    def stopped(*args, **kwargs):
        raise NonFiniteError("non-finite loss at env step 441 (run 0, seed 0); last good checkpoint: runs/x/200")

    monkeypatch.setattr("qmix.run.train", stopped)
    monkeypatch.setattr(sys, "argv", ["qmix", "train", "--env-steps", "10", "--out", "unused"])
    with pytest.raises(SystemExit) as exit_info:
        cli.main()
    assert exit_info.value.code == 3
    err = capsys.readouterr().err
    assert err.strip().splitlines() == ["qmix: error: non-finite loss at env step 441 (run 0, seed 0); "
                                        "last good checkpoint: runs/x/200"]


KILLED_RUN = """
import json, sys, time
from qmix.config import build_config
from qmix.run import train

def stand_still(path):  # so the kill surely lands before the run ends: right after its first checkpoint
    time.sleep(600)

train(build_config(preset="default", **json.loads(sys.argv[2])), sys.argv[1], progress=False, tensorboard=False,
      on_checkpoint=stand_still)
"""


def wait_for_first_checkpoint(process, run_dir, seconds=300):
    deadline = time.monotonic() + seconds
    while not list(run_dir.glob(f"{CHECKPOINT_FOLDER}/*/{MARKER}")):
        assert process.poll() is None, "the training process ended before its first checkpoint"
        assert time.monotonic() < deadline, f"no checkpoint within {seconds} s"
        time.sleep(0.05)


@pytest.mark.slow  # a process of its own, compiled again; the default set resumes killed runs in-process
def test_a_run_killed_with_sigkill_resumes_to_the_uninterrupted_result(uninterrupted, trainer, tmp_path):
    run_dir = tmp_path / "run"
    # The killed process loads the programs compiled here from the session's compilation cache (conftest.py)
    # instead of compiling them again, the slowest part of a tiny run.
    process = subprocess.Popen([sys.executable, "-c", KILLED_RUN, str(run_dir), json.dumps(TINY)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_first_checkpoint(process, run_dir)
        os.kill(process.pid, signal.SIGKILL)
        assert process.wait(timeout=60) == -signal.SIGKILL
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert not (run_dir / "params.msgpack").exists()
    resume(run_dir, trainer=trainer, **QUIET)
    assert_same_run(run_dir, uninterrupted)
