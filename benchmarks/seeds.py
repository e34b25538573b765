"""The cost of training K seeds side by side in one compiled program against one seed.

    python benchmarks/seeds.py [--map 3m] [--seeds 1 20] [--env-steps 10000] [--buffer 1000]

For each K: compile time, wall time to train every seed for the same number of env steps (after
compilation, learner running), env steps per second summed over seeds, and the replay's memory. The
ratio (time for K seeds) / (K x time for one seed) below 1 means side by side is cheaper than one after
another.
"""

from __future__ import annotations

import argparse
import time

import jax
import numpy as np

from qmix.build import make_trainer
from qmix.config import build_config
from qmix.learn.loop import seed_keys


def replay_bytes(runners) -> int:
    return sum(x.nbytes for x in jax.tree.leaves(runners.replay))


def measure(map_name: str, num_seeds: int, env_steps: int, buffer: int) -> dict:
    config = build_config(preset="default", map=map_name, num_seeds=num_seeds, buffer_size_episodes=buffer)
    trainer = make_trainer(config)
    runners = trainer.init_runs(seed_keys(0, num_seeds))
    never = np.full((num_seeds,), 2**31 - 1, np.int32)
    t0 = time.perf_counter()
    warm = np.full((num_seeds,), max(2_000, 60 * config.batch_size), np.int32)
    runners, _ = trainer.train_runs_until(runners, warm, never)  # compiles, then fills the replay
    jax.block_until_ready(runners.env_steps)
    warm_seconds = time.perf_counter() - t0
    start = np.asarray(runners.env_steps)
    t0 = time.perf_counter()
    runners, _ = trainer.train_runs_until(runners, (start + env_steps).astype(np.int32), never)
    jax.block_until_ready(runners.env_steps)
    seconds = time.perf_counter() - t0
    collected = int(np.sum(np.asarray(runners.env_steps) - start))
    return {"seeds": num_seeds, "warmup_s": warm_seconds, "seconds": seconds, "steps": collected,
            "rate": collected / seconds, "replay_mb": replay_bytes(runners) / 2**20}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--map", default="3m")
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 20])
    parser.add_argument("--env-steps", type=int, default=10_000, help="measured env steps per seed")
    parser.add_argument("--buffer", type=int, default=1000, help="replay size in episodes (per seed)")
    args = parser.parse_args()
    print(f"map {args.map}, default preset, replay {args.buffer} episodes per seed, {args.env_steps:,} env steps per seed")
    print("| seeds | compile + warm-up s | train s | env steps/s (all seeds) | replay MB | time vs K x one seed |")
    print("|---|---|---|---|---|---|")
    base = None
    for k in args.seeds:
        r = measure(args.map, k, args.env_steps, args.buffer)
        per_seed_seconds = r["seconds"] / (r["steps"] / k) * args.env_steps  # normalise to exactly env_steps
        base = base or per_seed_seconds
        ratio = per_seed_seconds / (k * base) if base else float("nan")
        print(f"| {k} | {r['warmup_s']:.1f} | {r['seconds']:.1f} | {r['rate']:,.0f} | {r['replay_mb']:.0f} | {ratio:.2f} |",
              flush=True)


if __name__ == "__main__":
    main()
