"""Run tasks on Ray: a local instance sized to the machine, or an existing cluster (`address`).

Each task is a Ray task declaring its CPUs, GPUs and memory (the replay estimate). A task whose worker
process or node dies is retried by Ray (`max_retries`) and resumes from its newest checkpoint; an error
raised by the training itself (a bad checkpoint, the NaN guard) is not retried: the task is reported
failed with that error and the others go on. Tasks are handed to Ray in order, at most as many at once as
the cluster can run, so the order of the list is the order in which runs start.
"""

from __future__ import annotations

import math
import os
import socket
import uuid
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from qmix.errors import ConfigError
from qmix.stopping import GracefulStop, StopRequested
from qmix.sweep.memory import format_bytes
from qmix.sweep.plan import Task
from qmix.sweep.state import RunState, inspect_run
from qmix.sweep.worker import STATUS_FOLDER, log_path, train_task

OBJECT_STORE_BYTES = 128 * 2**20  # tasks pass a few small dicts; Ray's default would reserve 30% of RAM
POLL_SECONDS = 2.0


@dataclass
class Outcome:
    task: Task
    status: str  # "skipped" (done before), "done", "failed"
    detail: str = ""
    result: dict = field(default_factory=dict)


@dataclass
class ClusterInfo:
    address: str
    nodes: int
    cpus: float
    gpus: float
    node_memory: list[int]  # bytes of Ray's `memory` resource, node by node

    @property
    def largest_node_memory(self) -> int:
        return max(self.node_memory, default=0)


def _check_reachable(address: str) -> None:
    """Ray retries an unreachable head for minutes; a refused connection is worth one line at once."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or "://" in address:
        return  # "auto", "ray://...": left to Ray
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as error:
        raise ConfigError(f"cannot reach a Ray cluster at '{address}' ({error.strerror or error}); start one with "
                          "`ray start --head` or fix --address") from None


def _refused_connection(address: str) -> str:
    """The head's port answered but Ray would not connect: with Ray 2.60's default that is the auth token."""
    # `ray start --head` turns token authentication on, but a driver given an explicit address sends its
    # token only when told to (RAY_AUTH_MODE=token), so the usual cause is a missing or different token.
    if os.environ.get("RAY_AUTH_MODE", "").lower() != "token":
        return (f"the Ray cluster at '{address}' refused this driver: a cluster started by `ray start --head` "
                "expects its auth token; set RAY_AUTH_MODE=token here (the token is read from ~/.ray/auth_token "
                "or RAY_AUTH_TOKEN, and must be the head's)")
    return (f"the Ray cluster at '{address}' refused this driver: check that ~/.ray/auth_token (or "
            "RAY_AUTH_TOKEN) holds the head's token, and that --address is the head's GCS port")


def start_ray(address: str | None = None, cpus: int | None = None, gpus: int | None = None,
              memory: int | None = None) -> ClusterInfo:
    """Join the cluster at `address`, or start Ray on this machine (all its cores unless `cpus`)."""
    import ray

    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    if address:
        if cpus is not None or gpus is not None or memory is not None:
            raise ConfigError("--cpus, --gpus and --memory size a local Ray; a cluster's nodes are sized by "
                              "their own `ray start`; drop them or drop --address")
        _check_reachable(address)
        try:
            ray.init(address=address, log_to_driver=False, logging_level="WARNING")
        except ConnectionError:
            raise ConfigError(_refused_connection(address)) from None
    else:
        # Ray starts its processes with fork + exec, which JAX (already imported) warns about needlessly.
        warnings.filterwarnings("ignore", message="os.fork", category=RuntimeWarning)
        # "local": a Ray of its own, even where `ray start` runs a cluster on this machine (which a plain
        # ray.init() would join, refusing the sizes given here)
        ray.init(address="local", num_cpus=cpus or os.cpu_count(), num_gpus=gpus, _memory=memory,
                 object_store_memory=OBJECT_STORE_BYTES, include_dashboard=False, log_to_driver=False,
                 logging_level="WARNING")
    alive = [n for n in ray.nodes() if n.get("Alive")]
    resources = ray.cluster_resources()
    return ClusterInfo(
        address=address or "local",
        nodes=len(alive),
        cpus=resources.get("CPU", 0.0),
        gpus=resources.get("GPU", 0.0),
        node_memory=[int(n["Resources"].get("memory", 0)) for n in alive],
    )


def stop_ray() -> None:
    import ray

    if ray.is_initialized():
        ray.shutdown()


def check_fits(tasks: list[Task], cluster: ClusterInfo) -> None:
    """A task no node can hold would wait forever: say so before starting anything."""
    for task in tasks:
        if task.memory > cluster.largest_node_memory:
            raise ConfigError(
                f"task {task.name} declares {format_bytes(task.memory)} (its replay) but the largest node offers "
                f"{format_bytes(cluster.largest_node_memory)}; lower buffer_size_episodes, use seed_group: 1, "
                "or add a bigger node")
        if task.gpus > cluster.gpus or task.cpus > cluster.cpus:
            raise ConfigError(f"task {task.name} asks for {task.cpus:g} CPUs and {task.gpus:g} GPUs; the cluster "
                              f"has {cluster.cpus:g} and {cluster.gpus:g}; change resources in the sweep file")


def triage(tasks: list[Task]) -> tuple[list[Task], list[Outcome]]:
    """Split off the tasks that need no worker: finished runs (skipped) and folders in the way (failed). A
    finished run still to be evaluated goes to a worker, which only evaluates it."""
    to_run, settled = [], []
    for task in tasks:
        found = inspect_run(task.run_dir, task.config)
        if found.state is RunState.DONE and not task.needs_evaluation:
            settled.append(Outcome(task, "skipped", "finished before"))
        elif found.state is RunState.CONFLICT:
            settled.append(Outcome(task, "failed", found.detail))
        else:
            to_run.append(task)
    return to_run, settled


def _error_line(error: BaseException) -> str:
    import ray.exceptions as rex

    if isinstance(error, rex.RayTaskError):
        cause = error.cause if error.cause is not None else error
        text = str(cause).strip().splitlines()
        return f"{type(cause).__name__}: {text[0] if text else ''}"
    if isinstance(error, rex.WorkerCrashedError | rex.NodeDiedError | rex.OutOfMemoryError | rex.RaySystemError):
        text = str(error).strip().splitlines()
        return f"lost its worker on every attempt ({type(error).__name__}: {text[0] if text else ''})"
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"


class MemoryBook:
    """What the running tasks declared, node by node (first fit, as Ray would place them): a queued task
    that fits nowhere now waits, and the next one that fits starts instead of idling a core behind it.
    With the nodes' memory unknown (an empty list), every task fits."""

    def __init__(self, node_memory: list[int]):
        self.free: list[float] = list(node_memory) or [math.inf]
        self.placed: dict[str, int] = {}  # task name -> node index

    def _node_for(self, task: Task) -> int | None:
        return next((i for i, free in enumerate(self.free) if task.memory <= free), None)

    def first_fitting(self, queue: list[Task]) -> int | None:
        """Index in `queue` of the first task some node can hold now (None: wait for a task to end)."""
        return next((i for i, task in enumerate(queue) if self._node_for(task) is not None), None)

    def take(self, task: Task) -> None:
        node = self._node_for(task)
        self.free[node] -= task.memory
        self.placed[task.name] = node

    def release(self, task: Task) -> None:
        self.free[self.placed.pop(task.name)] += task.memory


def _submit_while_free(queue: list[Task], running: dict, slots: int, book: MemoryBook, remote, out: Path,
                       sweep_id: str, display) -> None:
    while queue and len(running) < slots:
        index = book.first_fitting(queue)
        if index is None:
            return
        task = queue.pop(index)
        book.take(task)
        ref = remote.options(
            num_cpus=task.cpus, num_gpus=task.gpus, memory=task.memory, max_retries=task.retries,
            retry_exceptions=False, name=task.name,
        ).remote(task, str(out), sweep_id)
        running[ref] = task
        display.submitted(task)


def _outcome(task: Task, ref, out: Path) -> Outcome:
    import ray

    try:
        result = ray.get(ref)
        return Outcome(task, "done", result.get("mode", ""), result)
    except Exception as error:  # the task's own error or a lost worker: report it, go on
        return Outcome(task, "failed", f"{_error_line(error)} (log: {log_path(out, task.name)})")


def run_tasks(
    tasks: list[Task],
    out: Path,
    cluster: ClusterInfo,
    display,
    on_finished: Callable[[Outcome], None] | None = None,
    max_running: int | None = None,
) -> list[Outcome]:
    """Train every task not finished yet; returns one outcome per task, in the tasks' order."""
    import ray

    (out / STATUS_FOLDER).mkdir(parents=True, exist_ok=True)
    to_run, settled = triage(tasks)
    outcomes: dict[str, Outcome] = {o.task.name: o for o in settled}
    check_fits(to_run, cluster)
    sweep_id = uuid.uuid4().hex
    remote = ray.remote(max_calls=1)(train_task)  # a fresh process per task: its memory goes when it ends
    # Ray keeps its own queue, but not in our order across tasks of different sizes: hand tasks over
    # only as slots (and memory) free up, so the first tasks of the list that fit are the first to start.
    smallest = min((t.cpus for t in to_run), default=1.0) or 1.0
    slots = max_running or max(1, int(cluster.cpus // smallest))
    queue = list(to_run)
    running: dict[ray.ObjectRef, Task] = {}
    book = MemoryBook(cluster.node_memory)
    display.start(tasks, outcomes)
    # Entered after ray.init, so a SIGTERM (a cluster's pre-emption) stops the sweep, not Ray's own handler.
    with GracefulStop() as stop:
        try:
            while queue or running:
                if stop.requested:
                    raise StopRequested(stop.requested, f"stopped by {stop.name}: {len(running)} running task(s) "
                                        "cancelled; run the same command to continue (finished runs are skipped, "
                                        "the others resume from their newest checkpoints)")
                _submit_while_free(queue, running, slots, book, remote, out, sweep_id, display)
                ready, _ = ray.wait(list(running), num_returns=1, timeout=POLL_SECONDS)
                for ref in ready:
                    task = running.pop(ref)
                    book.release(task)
                    outcome = _outcome(task, ref, out)
                    outcomes[outcome.task.name] = outcome
                    display.finished(outcome)
                    if on_finished is not None:
                        on_finished(outcome)
                display.refresh(sweep_id)
        except (KeyboardInterrupt, StopRequested):
            for ref in running:
                ray.cancel(ref, force=True)
            raise
        finally:
            display.stop()
    return [outcomes[t.name] for t in tasks]
