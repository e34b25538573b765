"""`qmix sweep`: the sweep file's checks, the task plan and memory estimate, and real runs on a two-node
Ray cluster on the loopback: a tiny sweep completes across both nodes and a second one does nothing; a
worker killed mid-run is retried, resumes from its checkpoint and ends identical to the run in one process.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from qmix.algorithms import ALGORITHMS
from qmix.config import ConfigError, build_config
from qmix.run_folder import write_parameter_manifest
from qmix.sweep.memory import replay_bytes, task_memory_bytes
from qmix.sweep.plan import make_tasks, split_seeds, sweep_tasks
from qmix.sweep.spec import load_spec, parse_spec
from qmix.sweep.state import RunState, inspect_run
from qmix.sweep.worker import read_status

TINY_3M = dict(num_envs=2, batch_size=4, buffer_size_episodes=16, test_episodes=2, test_interval_env_steps=200,
               checkpoint_interval_env_steps=200, keep_checkpoints=2, save_replay=True, agent_hidden_dim=16,
               mixing_embed_dim=8, hypernet_embed_dim=16, time_buckets=1, updates_per_episode=0.5,
               target_update_interval_episodes=10)


def spec_of(**data):
    return parse_spec({"out": "/tmp/unused", **data}, "test.yaml")


# ----- the sweep file -----

@pytest.mark.parametrize("data, words", [
    ({"maps": ["2s3zz"]}, ["unknown map '2s3zz'", "did you mean '2s3z'"]),
    ({"maps": ["3m"], "algs": ["qmx"]}, ["unknown algorithm 'qmx'", "did you mean 'qmix'"]),
    ({"maps": ["3m"], "settings": {"lrr": 0.1}}, ["unknown setting 'lrr'", "did you mean 'lr'"]),
    ({"maps": ["3m"], "grid": {"lr": 0.1}}, ["'grid' must map each setting to a non-empty list"]),
    ({"maps": ["3m"], "seed": 3}, ["unknown key 'seed'", "did you mean 'seeds'"]),
    ({"algs": ["qmix"]}, ["'maps' is missing"]),
    ({"maps": ["3m"], "seeds": 0}, ["'seeds' must be at least 1"]),
    ({"maps": ["3m"], "seed_group": "two"}, ["'seed_group' must be a whole number >= 1 or auto"]),
    ({"maps": ["3m"], "settings": {"num_seeds": 4}}, ["'num_seeds' is set by the sweep's own keys"]),
    ({"maps": ["3m"], "resources": {"tpus": 1}}, ["unknown resource 'tpus'"]),
    ({"maps": ["3m"], "seeds": [0, 2**32]}, ["'seeds' must be below 4,294,967,296"]),
    ({"maps": [1.5]}, ["'maps' must be a name or a list of them, got 1.5"]),
    ({"maps": ["3m"], "seeds": ["a"]}, ["'seeds' must be a whole number or a list of them"]),
    ({"maps": ["3m"], "out": "/dev/null"}, ["the storage folder '/dev/null' is a file"]),
])
def test_a_wrong_sweep_file_gets_one_line_naming_the_fix(data, words):
    with pytest.raises(ConfigError) as error:
        spec_of(**data)
    message = str(error.value)
    assert "\n" not in message and message.startswith("sweep file 'test.yaml'")
    for word in words:
        assert word in message


def test_a_sweep_file_that_is_not_utf8_gets_one_line(tmp_path):
    spec = tmp_path / "latin1.yaml"
    spec.write_bytes(b"maps: [3m]\nout: x\n# caf\xe9\n")
    with pytest.raises(ConfigError, match=r"is not UTF-8 text \(byte \d+\); save it as UTF-8"):
        load_spec(spec)


def test_the_command_line_exits_2_on_a_bad_sweep_file_without_a_traceback(tmp_path, monkeypatch, capsys):
    from qmix import cli

    spec = tmp_path / "bad.yaml"
    spec.write_text("maps: [3m]\nalgs: [qmx]\nout: x\n")
    monkeypatch.setattr(sys, "argv", ["qmix", "sweep", str(spec)])  # in this process: no second start-up
    with pytest.raises(SystemExit) as exit_info:
        cli.main()
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"qmix: error: sweep file '{spec}': unknown algorithm 'qmx' (did you mean 'qmix'?): choose one of "
        + ", ".join(ALGORITHMS.names())]


def test_evaluate_episodes_of_a_sweep_file_reach_its_tasks_and_a_bad_value_is_one_line(tmp_path):
    spec = parse_spec({"maps": ["3m"], "seeds": 2, "seed_group": 1, "evaluate_episodes": 64}, "s.yaml", tmp_path)
    assert [t.evaluate_episodes for t in sweep_tasks(spec, memory_limit=None)] == [64, 64]
    assert parse_spec({"maps": ["3m"]}, "s.yaml", tmp_path).evaluate_episodes == 0
    with pytest.raises(ConfigError, match=r"^sweep file 's.yaml': 'evaluate_episodes' must be a whole number >= 0, "
                       r"got -1$"):
        parse_spec({"maps": ["3m"], "evaluate_episodes": -1}, "s.yaml", tmp_path)
    with pytest.raises(ConfigError, match=r"'evaluate_episodes' plays SMAX maps and the two-step game, not "
                       r"backend=sc2 \(3m\); set it to 0"):
        parse_spec({"maps": ["3m"], "settings": {"backend": "sc2"}, "evaluate_episodes": 8}, "s.yaml", tmp_path)


def test_an_unreachable_cluster_gets_one_line_and_exit_code_2(tmp_path):
    from ray_cluster import free_port

    spec = tmp_path / "ok.yaml"
    spec.write_text(f"maps: [two_step]\npreset: two_step\nout: {tmp_path / 'out'}\n")
    address = f"127.0.0.1:{free_port()}"  # nothing listens there
    done = subprocess.run([sys.executable, "-m", "qmix.cli", "sweep", str(spec), "--address", address],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].startswith(f"qmix: error: cannot reach a Ray cluster at '{address}'")


@pytest.mark.slow
def test_a_cluster_that_wants_an_auth_token_gets_one_line_naming_the_token(tmp_path):
    import secrets

    from ray_cluster import LoopbackCluster

    spec = tmp_path / "ok.yaml"
    spec.write_text(f"maps: [two_step]\npreset: two_step\nout: {tmp_path / 'out'}\n")
    cluster = LoopbackCluster(nodes=1, auth_token=secrets.token_hex(32))  # as `ray start --head` does by default
    try:
        driver = {k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH")}
        driver["HOME"] = str(tmp_path)  # no ~/.ray/auth_token of this machine's own
        done = subprocess.run([sys.executable, "-m", "qmix.cli", "sweep", str(spec), "--address", cluster.address],
                              capture_output=True, text=True, timeout=300, env=driver)
    finally:
        cluster.stop()
    assert done.returncode == 2
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(f"qmix: error: the Ray cluster at '{cluster.address}' refused this driver")
    assert "set RAY_AUTH_MODE=token" in last


# ----- the plan -----

def test_seeds_are_split_into_even_groups_of_consecutive_seeds():
    assert split_seeds([0, 1, 2, 3, 4], 2) == [[0, 1], [2, 3], [4]]
    assert split_seeds([0, 1, 2, 3], 3) == [[0, 1], [2, 3]]
    assert split_seeds([0, 1, 2, 7, 8], 5) == [[0, 1, 2], [7, 8]]


def test_a_grid_makes_one_folder_per_map_alg_and_point_with_seed_groups(tmp_path):
    spec = parse_spec({"maps": ["3m", "2s3z"], "algs": ["qmix", "vdn"], "seeds": 3, "seed_group": 2,
                       "grid": {"lr": [0.001, 0.0005]}, "env_steps": 1000, "out": str(tmp_path)}, "test.yaml")
    tasks = sweep_tasks(spec, memory_limit=None)
    assert len(tasks) == 2 * 2 * 2 * 2
    assert tasks[0].name == "3m-qmix-lr=0.001/seeds_0-1" and tasks[1].name == "3m-qmix-lr=0.001/seed_2"
    assert tasks[1].config.seed == 2 and tasks[1].config.num_seeds == 1 and tasks[1].config.algorithm.lr == 0.001
    assert tasks[0].run_dir == tmp_path / "3m-qmix-lr=0.001" / "seeds_0-1"
    one_group = sweep_tasks(spec_of(maps=["3m"], seeds=3), memory_limit=None)
    assert [t.name for t in one_group] == ["3m-qmix"] and one_group[0].config.num_seeds == 3


def test_the_replay_estimate_follows_the_environment_and_sizes_the_seed_groups(tmp_path):
    # 8m: 8 agents, 221 observation floats, 121 slots: the observations alone are 4.28 GB for 5000 episodes
    one_seed = replay_bytes(build_config(preset="default", map="8m"))
    assert 5000 * 121 * 8 * 221 * 4 < one_seed < 1.15 * 5000 * 121 * 8 * 221 * 4
    config = build_config(preset="default", map="8m", num_seeds=3)
    assert replay_bytes(config) == 3 * replay_bytes(build_config(preset="default", map="8m"))
    one = task_memory_bytes(build_config(preset="default", map="8m"))
    tasks = make_tasks(tmp_path, config, "8m-qmix", [0, 1, 2], None, memory_limit=int(one * 1.5))
    assert [t.seeds for t in tasks] == [[0], [1], [2]] and tasks[0].memory == one
    together = make_tasks(tmp_path, config, "8m-qmix", [0, 1, 2], None, memory_limit=10 * one)
    assert [t.seeds for t in together] == [[0, 1, 2]]


def test_a_task_too_big_for_the_free_memory_waits_and_the_next_one_that_fits_starts(tmp_path):
    from dataclasses import replace as with_fields

    from qmix.sweep.execute import MemoryBook

    config = build_config(preset="default", map="3m", env_steps=1000)
    task = make_tasks(tmp_path, config, "3m-qmix", [0], None, None)[0]
    big, small, also_big = (with_fields(task, name=n, memory=m) for n, m in (("big", 12), ("small", 4), ("also", 12)))
    book = MemoryBook([20])
    queue = [big, also_big, small]
    assert book.first_fitting(queue) == 0
    book.take(queue.pop(0))
    assert book.first_fitting(queue) == 1  # the second big one waits; the small one goes beside the first
    book.take(queue.pop(1))
    assert book.first_fitting(queue) is None
    book.release(big)
    assert book.first_fitting(queue) == 0
    two_nodes = MemoryBook([10, 16])
    two_nodes.take(big)  # first fit: the second node
    assert two_nodes.free == [10, 4] and two_nodes.first_fitting([also_big, small]) == 1
    assert MemoryBook([]).first_fitting([big]) == 0  # memory unknown: everything fits


def test_a_run_folder_is_done_resumable_fresh_or_in_the_way(tmp_path):
    config = build_config(preset="default", map="3m", env_steps=1000)
    run = tmp_path / "run"
    assert inspect_run(run, config).state is RunState.FRESH
    run.mkdir()
    (run / ".qmix.lock").write_text("123")  # killed while creating the folder, before config.yaml
    assert inspect_run(run, config).state is RunState.FRESH
    (run / "config.yaml").write_text(yaml.safe_dump(config.to_dict()))
    assert inspect_run(run, config).state is RunState.FRESH  # killed before its first checkpoint
    (run / "checkpoints" / "400").mkdir(parents=True)  # renamed by orbax, killed before its marker
    assert inspect_run(run, config).state is RunState.FRESH
    (run / "checkpoints" / "400" / "qmix_complete.json").write_text("{}")
    assert inspect_run(run, config).state is RunState.RESUME
    (run / "params.msgpack").write_bytes(b"")  # killed while writing its final parameters: no manifest yet
    assert inspect_run(run, config).state is RunState.RESUME
    write_parameter_manifest(run, ["params.msgpack"])
    assert inspect_run(run, config).state is RunState.DONE
    (run / "params.msgpack").write_bytes(b"changed")  # finished means parameters that match their manifest
    assert inspect_run(run, config).state is RunState.RESUME
    write_parameter_manifest(run, ["params.msgpack"])
    raised = build_config(preset="default", map="3m", env_steps=2000)
    assert inspect_run(run, raised).state is RunState.RESUME  # a raised budget continues
    other = build_config(preset="default", map="3m", env_steps=1000, lr=0.01)
    found = inspect_run(run, other)
    assert found.state is RunState.CONFLICT and "lr 0.001 (saved) vs 0.01" in found.detail
    # a setting that changes speed only (a changed default, say) keeps the run: it goes on with its own value
    faster = build_config(preset="default", map="3m", env_steps=1000, time_buckets=3)
    assert inspect_run(run, faster).state is RunState.DONE


def test_two_sweeps_sharing_a_storage_folder_keep_each_its_own_summary(tmp_path):
    from qmix.config import config_to_yaml
    from qmix.sweep.execute import Outcome
    from qmix.sweep.keep import keep_storage
    from qmix.sweep.summary import summary_folder, write_summary

    storage = tmp_path / "storage"
    finished = {}
    for name, alg, win_rate in (("lbf", "qmix", 0.25), ("lbf-vdn", "vdn", 0.75)):
        (task,) = sweep_tasks(parse_spec({"maps": ["3m"], "algs": [alg], "seeds": 1, "env_steps": 400,
                                          "out": str(storage)}, f"{name}.yaml"), memory_limit=None)
        task.run_dir.mkdir(parents=True)  # a finished run as the task leaves it
        (task.run_dir / "config.yaml").write_text(config_to_yaml(task.config))
        (task.run_dir / "metrics.jsonl").write_text(json.dumps({"env_steps": 400, "test_win_rate": win_rate}) + "\n")
        folder = summary_folder(storage, name)
        written = write_summary(storage, [Outcome(task, "done")], f"Sweep {name}", folder)
        assert written == folder / "summary.md" and (folder / "test_win_rate.png").is_file()
        finished[name] = (task, folder)
    # both summaries are in the storage folder when each sweep keeps its own: neither copy holds the other's runs
    for name, (task, folder) in finished.items():
        keep_storage(storage, tmp_path / f"kept-{name}", [(task.run_dir, task.config)], top=folder)
    first, second = ((tmp_path / f"kept-{name}" / "summary.md").read_text() for name in ("lbf", "lbf-vdn"))
    assert "| 3m | qmix | 1 |" in first and "vdn" not in first
    assert "| 3m | vdn | 1 |" in second and "qmix |" not in second
    assert (tmp_path / "kept-lbf-vdn" / "test_win_rate.png").is_file()
    assert (tmp_path / "kept-lbf-vdn" / "3m-vdn" / "kept.json").is_file()
    assert not (tmp_path / "kept-lbf-vdn" / "3m-qmix").exists()


def test_the_status_line_counts_runs_and_env_steps_from_the_run_folders(tmp_path):
    import io

    from qmix.sweep.execute import Outcome
    from qmix.sweep.progress import SweepDisplay

    base = build_config(preset="default", map="3m", env_steps=1000)
    first, second, third = make_tasks(tmp_path, base, "3m-qmix", [0, 1, 2], 1, None)
    (first.run_dir).mkdir(parents=True)
    (first.run_dir / "metrics.jsonl").write_text(json.dumps({"env_steps": 400}) + "\n" + '{"env_st')  # being written
    display = SweepDisplay(tmp_path, enabled=False, stream=io.StringIO())
    display.start([first, second, third], {})
    display.submitted(first)
    line = display.status_line()
    assert line.startswith("runs: 0 done, 0 running, 0 failed, 3 queued | env steps 400 / 3,000")
    display.finished(Outcome(third, "failed", "ValueError: boom"))
    assert "failed 3m-qmix/seed_2: ValueError: boom" in display.stream.getvalue()
    assert display.counts() == {"done": 0, "running": 0, "failed": 1, "queued": 2}


def test_the_rate_counts_a_resumed_run_from_its_checkpoint_not_below_zero(tmp_path):
    import io

    from qmix.sweep.progress import SweepDisplay

    base = build_config(preset="default", map="3m", env_steps=1000)
    task = make_tasks(tmp_path, base, "3m-qmix", [0], 1, None)[0]
    task.run_dir.mkdir(parents=True)
    metrics = task.run_dir / "metrics.jsonl"
    metrics.write_text(json.dumps({"env_steps": 600}) + "\n")
    display = SweepDisplay(tmp_path, enabled=False, stream=io.StringIO())
    display.start([task], {})
    metrics.write_text(json.dumps({"env_steps": 200}) + "\n")  # resumed: the log is rewound to step 200
    display._read_steps(force=True)
    assert " | 0/s | " in display.status_line()
    metrics.write_text(json.dumps({"env_steps": 200}) + "\n" + json.dumps({"env_steps": 500}) + "\n")
    display._read_steps(force=True)
    display.start_time -= 100.0  # 300 env steps in about 100 s
    assert " | 3/s | " in display.status_line()


# ----- on a real two-node cluster -----

@pytest.fixture(scope="module")
def cluster():
    from ray_cluster import LoopbackCluster

    nodes = LoopbackCluster(nodes=2, cpus_per_node=1)
    yield nodes
    nodes.stop()


def sweep_command(spec: Path, cluster, *extra) -> list[str]:
    return [sys.executable, "-m", "qmix.cli", "sweep", str(spec), "--address", cluster.address, "--no-progress",
            *extra]


def write_spec(path: Path, **data) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.slow  # minutes: a two-node cluster and real trainings (CI runs the slow set)
def test_a_tiny_sweep_runs_on_both_nodes_and_a_second_one_does_nothing(cluster, tmp_path):
    out = tmp_path / "out"
    spec = write_spec(tmp_path / "tiny.yaml", maps=["two_step", "3m"], algs=["qmix"], seeds=3, seed_group=2,
                      env_steps=400, settings={**TINY_3M, "save_replay": False, "test_interval_episodes": 0},
                      out=str(out))
    kept = tmp_path / "kept"  # --keep: a folder that outlasts the storage folder
    done = subprocess.run(sweep_command(spec, cluster, "--keep", str(kept)), capture_output=True, text=True,
                          env=cluster.environment, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "4 trained, 0 finished before, 0 failed of 4 tasks" in done.stdout
    for name in ("two_step-qmix/seeds_0-1/seed_1", "two_step-qmix/seed_2", "3m-qmix/seeds_0-1/seed_0",
                 "3m-qmix/seed_2"):
        assert (out / name / "params.msgpack").is_file() and (out / name / "metrics.jsonl").is_file()
    nodes = {read_status(out, t)["node_id"] for t in ("two_step-qmix/seeds_0-1", "two_step-qmix/seed_2",
                                                      "3m-qmix/seeds_0-1", "3m-qmix/seed_2")}
    assert len(nodes) == 2  # two tasks at a time on one CPU per node: both nodes trained
    summary = (out / "summaries" / "tiny" / "summary.md").read_text()  # the sweep file's own summary folder
    assert "| 3m | qmix | 3 |" in summary and (out / "summaries" / "tiny" / "test_win_rate.png").is_file()
    again = subprocess.run(sweep_command(spec, cluster), capture_output=True, text=True, env=cluster.environment,
                           timeout=300)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "0 trained, 4 finished before, 0 failed of 4 tasks" in again.stdout
    # the kept copy holds the summary and each run's small files, not its parameters; given back to an
    # empty storage folder (a new machine), the same sweep trains nothing
    assert "| 3m | qmix | 3 |" in (kept / "summary.md").read_text() and (kept / "3m-qmix/seed_2/kept.json").is_file()
    assert not list(kept.rglob("*.msgpack"))
    fresh = subprocess.run(sweep_command(spec, cluster, "--keep", str(kept), "--out", str(tmp_path / "fresh")),
                           capture_output=True, text=True, env=cluster.environment, timeout=300)
    assert fresh.returncode == 0, fresh.stdout + fresh.stderr
    assert "4 finished run(s) given back" in fresh.stdout and "0 trained, 4 finished before" in fresh.stdout


@pytest.mark.slow
def test_without_address_a_sweep_starts_its_own_ray_even_beside_a_cluster_on_the_machine(cluster, tmp_path):
    spec = write_spec(tmp_path / "local.yaml", maps=["two_step"], preset="two_step", env_steps=400,
                      out=str(tmp_path / "out"))
    beside = {**cluster.environment, "RAY_ADDRESS": cluster.address}  # which a plain ray.init() would join
    done = subprocess.run([sys.executable, "-m", "qmix.cli", "sweep", str(spec), "--cpus", "1", "--no-progress"],
                          capture_output=True, text=True, env=beside, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "(local, 1 CPUs, 0 GPUs)" in done.stdout and "1 trained, 0 finished before, 0 failed of 1 tasks" in done.stdout


def metrics(folder: Path):
    from qmix.run import WALL_CLOCK_FIELDS

    lines = (folder / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k not in WALL_CLOCK_FIELDS} for line in lines]


@pytest.mark.slow
def test_a_killed_worker_is_retried_and_resumes_to_the_same_run_as_one_process(cluster, tmp_path):
    from qmix.checkpoint import CHECKPOINT_FOLDER, MARKER
    from qmix.run import train

    settings = {**TINY_3M, "test_interval_episodes": 0}
    out = tmp_path / "out"
    # 4,000 steps: after the first checkpoint (step 200) the run trains for seconds, not a race with the kill
    spec = write_spec(tmp_path / "kill.yaml", maps=["3m"], algs=["qmix"], seeds=2, env_steps=4000,
                      settings=settings, out=str(out), retries=2)
    driver = subprocess.Popen(sweep_command(spec, cluster), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, env=cluster.environment)
    run_dir = out / "3m-qmix"
    try:
        deadline = time.time() + 600
        while not any((p / MARKER).is_file() for p in (run_dir / CHECKPOINT_FOLDER).glob("[0-9]*")):
            assert driver.poll() is None and time.time() < deadline, "no checkpoint before the run ended"
            time.sleep(0.1)
        status = read_status(out, "3m-qmix")
        os.kill(status["pid"], signal.SIGKILL)  # the worker process, mid-run, after its first checkpoint
        killed_before_the_end = not (run_dir / "seed_0" / "params.msgpack").exists()
        output, _ = driver.communicate(timeout=900)
    finally:
        if driver.poll() is None:
            driver.kill()
    assert killed_before_the_end
    assert driver.returncode == 0, output
    assert "1 trained, 0 finished before, 0 failed of 1 tasks" in output
    assert "done 3m-qmix: resumed from env step" in output and "attempt 2" in output
    assert read_status(out, "3m-qmix")["attempt"] == 2
    reference = tmp_path / "one-process"
    train(build_config(preset="default", map="3m", num_seeds=2, env_steps=4000, overrides=settings), reference,
          progress=False, tensorboard=False)
    for seed in ("seed_0", "seed_1"):
        assert metrics(run_dir / seed) == metrics(reference / seed)
        assert (run_dir / seed / "params.msgpack").read_bytes() == (reference / seed / "params.msgpack").read_bytes()
    again = subprocess.run(sweep_command(spec, cluster), capture_output=True, text=True, env=cluster.environment,
                           timeout=300)
    assert "0 trained, 1 finished before, 0 failed of 1 tasks" in again.stdout


@pytest.mark.slow
def test_sigterm_stops_the_sweep_with_one_line_and_the_same_command_resumes_it(cluster, tmp_path):
    from qmix.checkpoint import CHECKPOINT_FOLDER, MARKER

    out = tmp_path / "out"
    # 10,000 steps: the run goes on well past the driver's poll (2 s) after its first checkpoint, so the
    # SIGTERM lands while it trains (at 1,400 it could end first and the sweep rightly exit 0)
    spec = write_spec(tmp_path / "stop.yaml", maps=["3m"], algs=["qmix"], seeds=1, env_steps=10_000,
                      settings={**TINY_3M, "test_interval_episodes": 0}, out=str(out))
    driver = subprocess.Popen(sweep_command(spec, cluster), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, env=cluster.environment)
    try:
        deadline = time.time() + 600
        while not any((p / MARKER).is_file() for p in (out / "3m-qmix" / CHECKPOINT_FOLDER).glob("[0-9]*")):
            assert driver.poll() is None and time.time() < deadline, "no checkpoint before the run ended"
            time.sleep(0.1)
        worker = read_status(out, "3m-qmix")["pid"]
        driver.send_signal(signal.SIGTERM)  # what a cluster's scheduler sends before pre-emption
        output, _ = driver.communicate(timeout=120)
    finally:
        if driver.poll() is None:
            driver.kill()
    assert driver.returncode == 128 + signal.SIGTERM, output
    assert output.strip().splitlines()[-1].startswith("qmix: stopped by SIGTERM: 1 running task(s) cancelled")
    assert "Traceback" not in output and "SIGTERM received" not in output
    deadline = time.time() + 30
    while _alive(worker) and time.time() < deadline:
        time.sleep(0.2)
    assert not _alive(worker), "the cancelled task's worker outlived the sweep"
    again = subprocess.run(sweep_command(spec, cluster), capture_output=True, text=True, env=cluster.environment,
                           timeout=600)
    assert again.returncode == 0 and "done 3m-qmix: resumed from env step" in again.stdout, again.stdout


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_failed_task_says_why_in_its_own_log(tmp_path):
    from qmix.sweep.worker import log_path, train_task

    spec = parse_spec({"maps": ["two_step"], "preset": "two_step", "env_steps": 100, "out": str(tmp_path)}, "t.yaml")
    [task] = sweep_tasks(spec, 10**12)
    task.run_dir.mkdir(parents=True)
    other = build_config(preset="two_step", env_steps=100, lr=0.1)  # another run is in the way
    (task.run_dir / "config.yaml").write_text(yaml.safe_dump(other.to_dict()))
    with pytest.raises(ConfigError, match="holds a run with other settings"):
        train_task(task, str(tmp_path), "sweep-1")
    lines = log_path(tmp_path, task.name).read_text().splitlines()
    assert lines[0].startswith("--- attempt 1") and lines[-1].startswith("--- failed: ConfigError: ")
    assert "holds a run with other settings" in lines[-1]
