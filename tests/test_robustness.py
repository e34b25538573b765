"""What a run survives: --force, two processes on one folder, damaged final parameters, read-only and full
disks, two writers of one file, and stopping on SIGINT/SIGTERM at a safe point."""

import errno
import json
import os
import shutil
import subprocess
import sys
import threading

import pytest

from qmix import run_folder
from qmix.build import make_trainer
from qmix.config import build_config
from qmix.errors import ConfigError
from qmix.files import write_atomic
from qmix.run import resume, train

QUIET = dict(progress=False, tensorboard=False)
TWO_STEP = dict(preset="two_step", env_steps=400, checkpoint_interval_env_steps=200, test_interval_episodes=100,
                save_replay=True)  # exact resumes


def records(folder):
    return [{k: v for k, v in json.loads(line).items() if k not in ("wall_seconds", "env_steps_per_second")}
            for line in (folder / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def trainer():
    """One compiled two-step trainer for every run here (seed and budget are not part of the program)."""

    return make_trainer(build_config(**TWO_STEP))


@pytest.fixture(scope="module")
def finished(trainer, tmp_path_factory):
    folder = tmp_path_factory.mktemp("finished") / "run"
    train(build_config(**TWO_STEP), folder, trainer=trainer, **QUIET)
    return folder


def test_force_removes_everything_the_old_run_wrote_and_keeps_other_files(finished, trainer, tmp_path):
    old = tmp_path / "old"
    shutil.copytree(finished, old)
    for stale in ("evaluation.json", "evaluation_averaged.json", "averaged_agent.msgpack", "learning_curve.png",
                  "seed_7/metrics.jsonl", "tensorboard/events.out"):
        (old / stale).parent.mkdir(parents=True, exist_ok=True)
        (old / stale).write_text("old run")
    (old / "notes.txt").write_text("the user's own file")
    train(build_config(**{**TWO_STEP, "env_steps": 200, "seed": 5}), old, force=True, trainer=trainer, **QUIET)
    names = {p.relative_to(old).as_posix() for p in old.rglob("*") if p.is_file()}
    assert "notes.txt" in names
    assert not any(n.startswith(("evaluation", "averaged", "learning_curve", "seed_7", "tensorboard")) for n in names)
    assert records(old)[-1]["env_steps"] == 200


def test_a_failed_start_up_with_force_loses_nothing_of_the_old_run(finished, tmp_path, monkeypatch):
    old = tmp_path / "old"
    shutil.copytree(finished, old)
    before = {p.relative_to(old): p.read_bytes() for p in old.rglob("*") if p.is_file() and p.name != ".qmix.lock"}
    from qmix.learn.loop import Trainer

    def broken_init(self):
        raise RuntimeError("start-up failed")

    monkeypatch.setattr(Trainer, "init_runs", property(broken_init))
    with pytest.raises(RuntimeError):
        train(build_config(**TWO_STEP), old, force=True, **QUIET)
    after = {p.relative_to(old): p.read_bytes() for p in old.rglob("*") if p.is_file() and p.name != ".qmix.lock"}
    assert after == before
    with pytest.raises(RuntimeError):
        train(build_config(**TWO_STEP), tmp_path / "new", **QUIET)
    assert not (tmp_path / "new").exists()  # no half-made run folder


def test_a_run_folder_has_one_owner_at_a_time(finished, trainer, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    with run_folder.exclusive(run):  # another process training it (flock is per open file: the same here)
        with pytest.raises(ConfigError, match=f"is being trained by another process \\(pid {os.getpid()}\\)"):
            resume(run, {"env_steps": 600}, **QUIET)
        with pytest.raises(ConfigError, match="is being trained by another process"):
            train(build_config(**TWO_STEP), run, force=True, **QUIET)
    assert records(run) == records(finished)  # nothing was touched
    resume(run, {"env_steps": 600}, trainer=trainer, **QUIET)  # released when the owner let go
    assert records(run)[-1]["env_steps"] == 600


def test_non_finite_final_parameters_are_refused(finished, tmp_path):
    import numpy as np
    from flax import serialization

    from qmix.evaluate import evaluate_run

    run = tmp_path / "run"
    shutil.copytree(finished, run)
    tree = serialization.msgpack_restore((run / "params.msgpack").read_bytes())
    leaf = tree["agent"]["params"]["q"]["bias"]
    tree["agent"]["params"]["q"]["bias"] = np.full_like(leaf, np.inf)
    (run / "params.msgpack").write_bytes(serialization.msgpack_serialize(tree))
    run_folder.write_parameter_manifest(run, ["params.msgpack"])  # a whole file, only not finite
    with pytest.raises(ConfigError, match="holds non-finite parameters"):
        evaluate_run(run, episodes=2)


def test_evaluate_prints_its_results_before_a_read_only_folder_refuses_them(finished, tmp_path, monkeypatch, capsys):
    from qmix import cli, evaluate

    run = tmp_path / "run"
    shutil.copytree(finished, run)

    def read_only(path, data):
        raise OSError(errno.EROFS, "Read-only file system", str(path))

    monkeypatch.setattr(evaluate, "write_atomic", read_only)
    monkeypatch.setattr(sys, "argv", ["qmix", "evaluate", str(run), "--episodes", "4"])
    with pytest.raises(SystemExit) as exit_info:
        cli.main()
    out, err = capsys.readouterr()
    assert exit_info.value.code == 2 and "return 7.00" in out  # the two-step game's results, printed first
    assert err.strip().splitlines() == [f"qmix: error: could not write '{run / 'evaluation.json'}' (Read-only file "
                                        "system); the results are above"]


def test_a_full_disk_keeps_the_earlier_checkpoint_and_says_so_in_one_line(trainer, tmp_path, monkeypatch):
    from qmix.checkpoint import CheckpointStore

    save = CheckpointStore.save

    def full_after_the_first(self, step, *args):
        if self.steps():
            raise OSError(errno.ENOSPC, "No space left on device")
        return save(self, step, *args)

    monkeypatch.setattr(CheckpointStore, "save", full_after_the_first)
    run = tmp_path / "run"
    with pytest.raises(ConfigError, match=r"no space left on the device of .* for the checkpoint at env step 400 "
                                          r"\(a checkpoint takes about .* [KM]iB\); the checkpoint at env step 200 is kept"):
        train(build_config(**TWO_STEP), run, trainer=trainer, **QUIET)
    monkeypatch.setattr(CheckpointStore, "save", save)
    resume(run, trainer=trainer, **QUIET)  # after freeing space: the run goes on from the kept checkpoint
    assert records(run)[-1]["env_steps"] == 400


class Killed(Exception):
    """Stands in for SIGKILL in-process: nothing after the point where it is raised runs."""


def test_a_run_killed_before_its_first_checkpoint_was_marked_starts_again_from_step_0_without_force(
        finished, trainer, tmp_path, monkeypatch, capsys):
    # The kill window between orbax renaming a step and its completion marker, injected: the step is on disk,
    # unmarked. Resumable means a marked step, so --resume and --out both start the run again from step 0.
    from qmix.checkpoint import CheckpointStore

    def killed_while_hashing(self, step):
        raise Killed(step)

    for how in ("resume", "train"):
        run = tmp_path / how
        with monkeypatch.context() as patch:
            patch.setattr(CheckpointStore, "_mark_complete", killed_while_hashing)
            with pytest.raises(Killed):
                train(build_config(**TWO_STEP), run, trainer=trainer, **QUIET)
        assert [p.name for p in (run / "checkpoints").iterdir()] == ["200"]  # renamed, never marked
        capsys.readouterr()
        if how == "resume":
            resume(run, trainer=trainer, **QUIET)
        else:
            train(build_config(**TWO_STEP), run, trainer=trainer, **QUIET)
        assert capsys.readouterr().err.splitlines()[0] == (
            f"qmix: note: '{run}' stopped before its first checkpoint; starting it again from step 0")
        assert records(run) == records(finished)
        assert (run / "params.msgpack").read_bytes() == (finished / "params.msgpack").read_bytes()


def test_a_first_checkpoint_that_cannot_fit_is_refused_before_writing_and_the_run_starts_again(
        finished, trainer, tmp_path, monkeypatch):
    import qmix.session

    free = shutil.disk_usage(tmp_path)._replace(free=1000)
    monkeypatch.setattr(qmix.session.shutil, "disk_usage", lambda path: free)
    run = tmp_path / "run"
    with pytest.raises(ConfigError) as refused:
        train(build_config(**TWO_STEP), run, trainer=trainer, **QUIET)
    assert str(refused.value).startswith(f"no space left on the device of '{run.absolute() / 'checkpoints'}' for "
                                         "the checkpoint at env step 200 (a checkpoint takes about ")
    assert str(refused.value).endswith(f"no checkpoint was kept: free some space, and `qmix train --resume {run}` "
                                       "starts it again from step 0")
    assert list((run / "checkpoints").iterdir()) == []  # nothing half-written
    monkeypatch.undo()
    resume(run, trainer=trainer, **QUIET)
    assert records(run) == records(finished)


def test_two_writers_of_one_file_never_collide(tmp_path):
    path, failures = tmp_path / "report.md", []

    def write_many(text):
        for _ in range(300):
            try:
                write_atomic(path, text)
            except Exception as error:  # noqa: BLE001
                failures.append(error)

    threads = [threading.Thread(target=write_many, args=(f"writer {i}\n" * 200,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert path.read_text() in ("writer 0\n" * 200, "writer 1\n" * 200)
    assert [p.name for p in tmp_path.iterdir()] == ["report.md"]  # no temporary file left


STOPPED_RUNS = """
import json, os, signal, sys
from pathlib import Path
from qmix.config import build_config
from qmix.run import train
from qmix.stopping import StopRequested

code = 0
for name in sys.argv[3:]:  # one run per signal, one after the other in this process
    signum, sent = getattr(signal, name), []

    def signal_once(path):  # the signal arrives while the run is busy: right after its first checkpoint
        if not sent:
            sent.append(os.kill(os.getpid(), signum))

    try:
        train(build_config(**json.loads(sys.argv[2])), Path(sys.argv[1]) / name, progress=False,
              tensorboard=False, on_checkpoint=signal_once)
    except StopRequested as error:
        code = error.exit_code
        print(f"{name}: exit code {code}: {error}", file=sys.stderr)
sys.exit(code)
"""


def test_a_signal_stops_at_a_safe_point_with_a_checkpoint_and_the_run_resumes_exactly(finished, trainer, tmp_path):
    # SIGTERM, then SIGINT, each stopping a run of one process (one start-up for both); the process exits
    # with the last run's code
    codes = {"SIGTERM": 143, "SIGINT": 130}
    done = subprocess.run([sys.executable, "-c", STOPPED_RUNS, str(tmp_path), json.dumps(TWO_STEP), *codes],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == codes["SIGINT"], done.stderr
    for name, code in codes.items():
        run = tmp_path / name
        [line] = [line for line in done.stderr.splitlines() if line.startswith(f"{name}: ")]
        assert line.startswith(f"{name}: exit code {code}: "), done.stderr
        assert f"stopped by {name} at env step 200" in line and f"qmix train --resume {run}" in line
        assert not (run / "params.msgpack").exists()
        resume(run, trainer=trainer, **QUIET)
        assert records(run) == records(finished)


def test_a_signal_during_start_up_exits_cleanly_and_leaves_no_run_folder(tmp_path):
    run = tmp_path / "run"
    script = ("import os, signal, sys\nfrom qmix.learn.loop import Trainer\nfrom qmix import cli\n"
              "init = Trainer.init_runs\n"
              "def stop_then_init(self):\n    os.kill(os.getpid(), signal.SIGTERM)\n    return init.func(self)\n"
              "Trainer.init_runs = property(stop_then_init)\n"
              f"sys.argv = ['qmix', 'train', '--preset', 'two_step', '--out', {str(run)!r}, '--no-progress']\n"
              "cli.main()\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert done.returncode == 143, done.stderr
    assert done.stderr.strip().splitlines() == ["qmix: stopped by SIGTERM during start-up; nothing was trained"]
    assert not run.exists()


def test_a_signal_before_anything_is_imported_is_not_lost(tmp_path):
    """Ctrl-C while `qmix train` still imports JAX and the environments (before any stop handler of the run
    exists) is recorded from the command's first moment, and stops the run at its first safe point."""
    run = tmp_path / "run"
    script = ("import os, signal, sys\nfrom qmix import cli\n"
              "main = cli._main\n"
              "def signal_first(words):\n    os.kill(os.getpid(), signal.SIGINT)\n    return main(words)\n"
              "cli._main = signal_first\n"
              f"sys.argv = ['qmix', 'train', '--preset', 'two_step', '--out', {str(run)!r}, '--no-progress']\n"
              "cli.main()\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert done.returncode == 130, done.stderr
    assert done.stderr.strip().splitlines() == ["qmix: stopped by SIGINT during start-up; nothing was trained"]
    assert not run.exists()


def test_the_early_recorder_hands_over_to_the_run_and_then_gives_ctrl_c_back():
    import os
    import signal

    from qmix.stopping import GracefulStop, record_stops_from_now, stop_recording

    record_stops_from_now()
    try:
        os.kill(os.getpid(), signal.SIGTERM)  # recorded, not fatal
        with GracefulStop() as stop:
            assert stop.requested == signal.SIGTERM
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # Ctrl-C interrupts again
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    finally:
        stop_recording()
    record_stops_from_now()
    stop_recording()  # a command that never trained: the defaults come back, nothing is left recorded
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert GracefulStop().requested is None


def test_files_written_atomically_get_the_permissions_of_a_plain_open(tmp_path):
    import os

    from qmix.files import _umask, write_atomic

    _umask.cache_clear()
    previous = os.umask(0o022)
    try:
        write_atomic(tmp_path / "a.json", "{}")
        (tmp_path / "b.json").write_text("{}")
    finally:
        os.umask(previous)
        _umask.cache_clear()
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == (tmp_path / "b.json").stat().st_mode & 0o777 == 0o644


def test_the_address_space_limit_counts_as_memory_left(monkeypatch):
    """`ulimit -v` (RLIMIT_AS) caps what the process can allocate however much memory the machine has: the
    replay check counts the room left under it."""
    import resource
    from pathlib import Path

    from qmix import memory

    size = next(int(line.split()[1]) * 1024 for line in Path("/proc/self/status").read_text().splitlines()
                if line.startswith("VmSize:"))
    monkeypatch.setattr(resource, "getrlimit", lambda which: (size + 2**30, resource.RLIM_INFINITY))
    room = memory.address_space_left()
    assert abs(room - 2**30) < 0.1 * 2**30  # the process may have grown or shrunk a little since VmSize was read
    assert memory.available_bytes() <= room
    monkeypatch.setattr(resource, "getrlimit", lambda which: (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    assert memory.address_space_left() is None
