"""Running JaxMARL's own baselines beside `qmix train`, for the side-by-side benchmarks
(against_jaxmarl.py: PQN-VDN; against_jaxmarl_qmix.py: QMIX).

Their scripts run unmodified under their own Python (hydra overrides only), report through wandb in offline
mode, and are read back from wandb's offline run file by this module run under their Python:

    THEIR_PYTHON benchmarks/jaxmarl_runs.py --read-wandb RUN_FILE

Setup, once: a checkout of JaxMARL at the commit measured, and a Python that runs their scripts (they need
hydra-core, omegaconf and wandb besides jaxmarl; `check_setup` says what is missing and how to install it):

    git clone https://github.com/FLAIROx/JaxMARL && git -C JaxMARL checkout c793d095618c6d3edfb5632802348f57b70a4b94
    python -m venv jaxmarl-venv && jaxmarl-venv/bin/pip install jaxmarl==0.2.0 jax==<this venv's> \\
        flax==<this venv's> optax==<this venv's> flashbax==<this venv's> hydra-core omegaconf wandb six

Both sides run one after the other, each in its own process, with the same environment variables and CPU
affinity and no persistent compilation cache (both compile from scratch).
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

JAXMARL_COMMIT = "c793d095618c6d3edfb5632802348f57b70a4b94"
SETUP = f"git clone https://github.com/FLAIROx/JaxMARL && git -C JaxMARL checkout {JAXMARL_COMMIT}"
# module -> pip package (gymnax, under jaxmarl, imports six; their QMIX replays with flashbax)
THEIR_MODULES = {"jaxmarl": "jaxmarl", "hydra": "hydra-core", "omegaconf": "omegaconf", "wandb": "wandb",
                 "optax": "optax", "six": "six", "flashbax": "flashbax"}
# run by their Python: the modules it lacks, and its jax version (without importing jax)
PROBE = ("import importlib.metadata as m, importlib.util as u, json, sys; print(json.dumps({'missing': [n for n in "
         "sys.argv[1:] if u.find_spec(n) is None], 'jax': m.version('jax') if u.find_spec('jax') else None}))")


def read_wandb_history(path: Path) -> list[dict]:
    """The history rows of a wandb offline run file: LevelDB-log framed records (32 KiB blocks, 7-byte
    headers, after wandb's 7-byte file header), each a wandb Record protobuf. Runs under their Python."""
    from wandb.proto import wandb_internal_pb2

    data, block, position, pending, rows = path.read_bytes(), 32768, 7, b"", []
    while position + 7 <= len(data):
        if block - position % block < 7:  # a block's tail too short for a header is padding
            position += block - position % block
            continue
        length, kind = struct.unpack("<HB", data[position + 4 : position + 7])
        pending += data[position + 7 : position + 7 + length]
        position += 7 + length
        if kind in (1, 4):  # a whole record, or the last piece of one
            record = wandb_internal_pb2.Record.FromString(pending)
            pending = b""
            if record.WhichOneof("record_type") == "history":
                items = record.history.item  # a key is in `key` or, in newer wandb, in `nested_key`
                rows.append({item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in items})
    return rows


def check_setup(args, script: Path) -> str:
    """Exit with one line if their checkout or their Python's packages are missing; their jax version."""
    if args.jaxmarl is None or not (args.jaxmarl / script).is_file():
        sys.exit(f"error: no {script} under --jaxmarl {args.jaxmarl or '(not given)'}; set up JaxMARL with: {SETUP}")
    try:
        probe = subprocess.run([args.jaxmarl_python, "-c", PROBE, "jax", *THEIR_MODULES], capture_output=True,
                               text=True, check=True)
    except (OSError, subprocess.CalledProcessError) as error:
        sys.exit(f"error: cannot run --jaxmarl-python {args.jaxmarl_python}: {error}")
    found = json.loads(probe.stdout)
    if found["missing"]:
        packages = " ".join(THEIR_MODULES.get(m, m) for m in found["missing"])
        sys.exit(f"error: JaxMARL's script needs {packages} in {args.jaxmarl_python}: run `{args.jaxmarl_python} "
                 f"-m pip install {packages}`, or pass --jaxmarl-python of a venv that has them (setup: the top of "
                 f"{__file__})")
    return found["jax"]


def checkout_commit(folder: Path) -> str:
    done = subprocess.run(["git", "-C", str(folder), "rev-parse", "HEAD"], capture_output=True, text=True)
    return f"commit {done.stdout.strip()[:9]}" if done.returncode == 0 else "no git commit"


def run_timed(name: str, command: list[str], folder: Path, environment: dict) -> float:
    """Wall seconds of one child process; exit with its last error line if it fails."""
    start = time.perf_counter()
    done = subprocess.run(command, cwd=folder, env=environment, capture_output=True, text=True)
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines() or [f"exit status {done.returncode}"]
        sys.exit(f"error: {name} failed (run folder {folder}): {lines[-1]}")
    return time.perf_counter() - start


def steady_rate(points: list[tuple[float, float]], start: int) -> float:
    """Env steps per second from the first (env steps, seconds) point at or past `start` env steps to the last."""
    (steps0, time0), (steps1, time1) = next(pt for pt in points if pt[0] >= start), points[-1]
    return (steps1 - steps0) / max(time1 - time0, 1e-9)


def their_history(args, folder: Path) -> list[dict]:
    """Every row their script logged to wandb (offline) in `folder`, read back by their Python."""
    run_file = max((folder / "wandb").glob("offline-run-*/run-*.wandb"), key=lambda f: f.stat().st_mtime)
    read = subprocess.run([args.jaxmarl_python, __file__, "--read-wandb", str(run_file)], capture_output=True,
                          text=True, check=True)
    return json.loads(read.stdout)


def measure_theirs(args, name: str, command: list[str], folder: Path, environment: dict, start: int) -> dict:
    """Their run: env steps/s from `start` env steps on, its last greedy win rate, its wall seconds."""
    environment = {**environment, "WANDB_DIR": str(folder), "WANDB_SILENT": "true"}
    wall = run_timed(name, command, folder, environment)
    rows = their_history(args, folder)
    points = [(r["env_step"], r["_timestamp"]) for r in rows]
    return {"rate": steady_rate(points, start), "wall": wall, "win": rows[-1]["test_returned_won_episode"]}


def measure_ours(command: list[str], folder: Path, environment: dict, start: int) -> dict:
    """Our run (its folder `folder`/qmix): env steps/s from `start` env steps on, the last test's win rate."""
    environment = {**environment, "QMIX_COMPILE_CACHE": "off"}
    wall = run_timed("qmix train", command, folder, environment)
    with open(folder / "qmix" / "metrics.jsonl") as lines:
        records = [json.loads(line) for line in lines if line.strip()]
    points = [(r["env_steps"], r["wall_seconds"]) for r in records]
    return {"rate": steady_rate(points, start), "wall": wall, "win": records[-1]["test_win_rate"]}


def qmix_command() -> str:
    return str(Path(sys.executable).with_name("qmix"))


def child_environment(args) -> dict:
    """Identical for both sides: no persistent compilation cache, the same cores (inherited affinity)."""
    if args.cpus:
        os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[: args.cpus])
    return {k: v for k, v in os.environ.items() if k != "JAX_COMPILATION_CACHE_DIR"}


def print_table_header(theirs: str, ours: str) -> None:
    print(f"| map | budget | JaxMARL {theirs} env steps/s | qmix {ours} env steps/s | ratio | JaxMARL greedy win | "
          "qmix greedy win | JaxMARL wall s | qmix wall s |")
    print("|---|---|---|---|---|---|---|---|---|")


def compare_on_map(args, map_name: str, plan: dict, their_name: str, their_command, our_command,
                   environment: dict) -> None:
    """Their run, then ours, on one map (in args.keep/<map>, else a temporary folder); print the table row.
    `their_command` and `our_command` take (args, map_name, plan, folder)."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep / map_name if args.keep else Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        start = 2 * plan["test_interval_env_steps"]  # every compilation behind
        theirs = measure_theirs(args, their_name, their_command(args, map_name, plan, folder), folder, environment,
                                start)
        ours = measure_ours(our_command(args, map_name, plan, folder), folder, environment, start)
    print(f"| {map_name} | {plan['budget']:,} | {theirs['rate']:,.0f} | {ours['rate']:,.0f} | "
          f"{ours['rate'] / theirs['rate']:.2f} | {theirs['win']:.0%} | {ours['win']:.0%} | {theirs['wall']:.0f} | "
          f"{ours['wall']:.0f} |", flush=True)


if __name__ == "__main__":
    if sys.argv[1:2] != ["--read-wandb"] or len(sys.argv) != 3:
        sys.exit("usage: jaxmarl_runs.py --read-wandb RUN_FILE (run by their Python)")
    print(json.dumps(read_wandb_history(Path(sys.argv[2]))))
