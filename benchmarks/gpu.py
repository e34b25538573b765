"""Throughput and memory per seed of K seeds trained side by side, on whatever device JAX finds.

    python benchmarks/gpu.py --map 3m --seeds 1 4 16 --env-steps 20000

Each K runs in a fresh process (so its peak memory is its own): `qmix.run.train` with the default preset,
K vmapped seeds. Throughput is measured between the test point after `--warmup` env steps (compilation and
filling the replay are behind it) and the end; memory is the device's peak bytes in use on a GPU, the
process's peak resident size on the CPU. Printed beside it: the replay estimate a sweep task declares.
The same command runs on a CUDA machine with the `gpu` extra installed (docs/sweeps.md) and on the CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path


def measure(map_name: str, seeds: int, env_steps: int, warmup: int, buffer: int, overrides: dict) -> dict:
    """Child process: one training run of `seeds` vmapped seeds; throughput and peak memory."""
    import jax

    from qmix.config import build_config
    from qmix.run import train
    from qmix.sweep.memory import replay_bytes

    config = build_config(preset="default", map=map_name, num_seeds=seeds, env_steps=warmup + env_steps,
                          overrides={"buffer_size_episodes": buffer, "test_interval_env_steps": min(warmup, env_steps),
                                     "test_episodes": 8, "checkpoint_interval_env_steps": 0, **overrides})
    with tempfile.TemporaryDirectory() as folder:
        summary = train(config, Path(folder) / "run", progress=False, tensorboard=False)
    records = summary.history[0]
    start = next(r for r in records if r["env_steps"] >= warmup)
    end = records[-1]
    seconds = end["wall_seconds"] - start["wall_seconds"]
    device = jax.devices()[0]
    stats = device.memory_stats() if device.platform != "cpu" else None
    peak = stats["peak_bytes_in_use"] if stats else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {
        "device": f"{device.platform} ({device.device_kind})",
        "memory_kind": "device peak bytes in use" if stats else "process peak resident size",
        "seeds": seeds,
        "env_steps_per_second_per_seed": (end["env_steps"] - start["env_steps"]) / max(seconds, 1e-9),
        "measured_env_steps": end["env_steps"] - start["env_steps"],
        "peak_bytes": peak,
        "replay_estimate_bytes": replay_bytes(config),
        "total_wall_seconds": summary.wall_seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--map", default="3m")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 4, 16], help="the K to measure")
    parser.add_argument("--env-steps", type=int, default=20_000, help="measured env steps per seed")
    parser.add_argument("--warmup", type=int, default=5_000, help="env steps per seed before measuring")
    parser.add_argument("--buffer", type=int, default=5000, help="buffer_size_episodes per seed")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("settings", nargs="*", help="extra key=value settings")
    args = parser.parse_args()
    overrides = dict(s.split("=", 1) for s in args.settings)
    if args.child is not None:
        print(json.dumps(measure(args.map, args.child, args.env_steps, args.warmup, args.buffer, overrides)))
        return
    environment = {**os.environ, "XLA_PYTHON_CLIENT_PREALLOCATE": "false"}  # GPU: peak in use, not a preallocation
    rows = []
    for k in args.seeds:
        command = [sys.executable, __file__, "--map", args.map, "--env-steps", str(args.env_steps), "--warmup",
                   str(args.warmup), "--buffer", str(args.buffer), "--child", str(k), *args.settings]
        done = subprocess.run(command, capture_output=True, text=True, env=environment)
        if done.returncode != 0:
            sys.exit(f"K={k} failed: {done.stderr.strip().splitlines()[-1] if done.stderr.strip() else done.returncode}")
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    print(f"{args.map}, default preset, replay {args.buffer} episodes per seed, {args.env_steps:,} measured env "
          f"steps per seed after {args.warmup:,}; device: {rows[0]['device']}; memory: {rows[0]['memory_kind']}")
    print("| seeds | env steps/s per seed | env steps/s all seeds | peak memory GB | per seed GB | replay estimate per seed GB |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        k = r["seeds"]
        rate = r["env_steps_per_second_per_seed"]
        print(f"| {k} | {rate:,.0f} | {rate * k:,.0f} | {r['peak_bytes'] / 1e9:.2f} | {r['peak_bytes'] / k / 1e9:.2f} | "
              f"{r['replay_estimate_bytes'] / k / 1e9:.2f} |")


if __name__ == "__main__":
    main()
