"""The body of one task, run in a Ray worker: train the run folder, or continue it from its newest checkpoint.

A retried task (its worker or node died) finds the checkpoints the lost attempt wrote and resumes from the
newest; a folder without a complete checkpoint starts from env step 0, which the task's result says. A task
asking for an evaluation then plays its final parameters greedily (`qmix evaluate`), while they are on the
storage: a finished run without its evaluation is given to a worker for that alone.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from pathlib import Path

from qmix.compile_cache import enable_compile_cache
from qmix.errors import ConfigError
from qmix.files import write_atomic
from qmix.sweep.plan import Task
from qmix.sweep.state import RunState, inspect_run

STATUS_FOLDER = ".sweep"  # under the storage folder: one status file and one log per task


def status_id(task_name: str) -> str:
    return task_name.replace("/", "__")


def status_path(out: Path, task_name: str) -> Path:
    return out / STATUS_FOLDER / f"{status_id(task_name)}.json"


def log_path(out: Path, task_name: str) -> Path:
    return out / STATUS_FOLDER / f"{status_id(task_name)}.log"


def read_status(out: Path, task_name: str) -> dict:
    try:
        return json.loads(status_path(out, task_name).read_text())
    except (OSError, ValueError):
        return {}


def _node_address() -> str:
    with contextlib.suppress(Exception):
        import ray

        return ray.util.get_node_ip_address()
    return socket.gethostname()


def _node_id() -> str:
    with contextlib.suppress(Exception):
        import ray

        return ray.get_runtime_context().get_node_id()
    return ""


def _record_attempt(out: Path, task: Task, sweep_id: str) -> int:
    """Count this attempt in the task's status file (the driver shows it; a retry is attempt 2, ...)."""
    previous = read_status(out, task.name)
    attempt = previous.get("attempt", 0) + 1 if previous.get("sweep_id") == sweep_id else 1
    write_atomic(status_path(out, task.name), json.dumps({
        "sweep_id": sweep_id, "attempt": attempt, "pid": os.getpid(), "node": _node_address(),
        "node_id": _node_id(), "started": time.time(),
    }))
    return attempt


def train_task(task: Task, out: str, sweep_id: str) -> dict:
    """Run one task to its budget; returns what the driver reports. Errors propagate (no retry for them)."""
    out_path = Path(out)
    attempt = _record_attempt(out_path, task, sweep_id)
    config = task.config
    found = inspect_run(task.run_dir, config)
    if found.state is RunState.DONE and not task.needs_evaluation:
        return {"name": task.name, "mode": "already done", "attempt": attempt, "wall_seconds": 0.0}
    log = log_path(out_path, task.name)
    with open(log, "a", encoding="utf-8") as stream, contextlib.redirect_stdout(stream), \
            contextlib.redirect_stderr(stream):
        print(f"--- attempt {attempt} on {_node_address()} (pid {os.getpid()}), {time.ctime()}", flush=True)
        try:
            return _train_logged(task, found, attempt)
        except BaseException as error:  # the log the failure line points to says why, too
            reason = (str(error).strip().splitlines() or [""])[0]
            print(f"--- failed: {type(error).__name__}: {reason}", flush=True)
            raise


def _train_logged(task: Task, found, attempt: int) -> dict:
    """The task's work, its output going to the task's log."""
    from qmix.run import resume, train

    if found.state is RunState.CONFLICT:
        raise ConfigError(found.detail)
    config = task.config
    result = {"name": task.name, "attempt": attempt, "wall_seconds": 0.0}
    enable_compile_cache()  # the node's tasks share their compiled programs (a fresh process each)
    if found.state is RunState.DONE:
        mode = "trained before"
    else:
        if found.state is RunState.RESUME:
            mode = f"resumed {found.detail}"
            summary = resume(task.run_dir, {"env_steps": task.env_steps}, progress=False)
        else:
            mode = "from env step 0" + (f" ({found.detail})" if found.detail else "")
            summary = train(config, task.run_dir, force=True, progress=False)
        print(f"--- finished: {mode}, {summary.wall_seconds:.0f} s", flush=True)
        result.update(wall_seconds=summary.wall_seconds, headline=summary.headline,
                      final_test_headline=list(summary.final_test_headline),
                      env_steps=list(summary.env_steps))
    if task.needs_evaluation:
        mode += "; " + _evaluate(task, result)
    return {**result, "mode": mode}


def _evaluate(task: Task, result: dict) -> str:
    """`qmix evaluate` on the final parameters, while they are on this storage (its errors fail the task)."""
    from qmix.evaluate import evaluate_run, format_evaluation
    from qmix.metric_text import format_value, label

    evaluation = evaluate_run(task.run_dir, episodes=task.evaluate_episodes)
    print(*format_evaluation(evaluation), sep="\n", flush=True)
    result[f"greedy_{evaluation.headline}"] = evaluation.mean
    return (f"greedy {label(evaluation.headline)} {format_value(evaluation.headline, evaluation.mean, 1)} over "
            f"{task.evaluate_episodes} episodes per seed")
