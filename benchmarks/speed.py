"""Training throughput against the environment-only ceiling, on the same vmapped environments.

    python benchmarks/speed.py [--maps 3m 8m 3s5z] [--preset pymarl] [--env-steps 20000]

For each map: env steps per second of the compiled training loop (collection + replay + learner updates at
the preset's ratio, after compilation and once the replay can be sampled), the environment alone with random
available actions on the same number of environments (the ceiling of that loop), and the ratio. A second
ceiling with many environments shows what SMAX itself can do on this machine. Figures from one process,
one after the other, so the ratios hold even on a busy machine better than the absolute numbers.
"""

from __future__ import annotations

import argparse
import time

import jax
import numpy as np

from qmix.config import build_config
from qmix.learn.rollout import run_episodes
from qmix.learn.train import Trainer, seed_keys


def training_rate(trainer: Trainer, measured_env_steps: int) -> float:
    config = trainer.config
    runners = trainer.init_runs(seed_keys(config.seed, 1))
    # warm-up: compile, and fill the replay past one batch so the learner is running during the measurement
    warm = np.array([max(2_000, 60 * config.batch_size)], np.int32)
    runners, _ = trainer.train_runs_until(runners, warm, np.array([2**31 - 1], np.int32))
    jax.block_until_ready(runners.env_steps)
    start_steps = int(runners.env_steps[0])
    stop = np.array([start_steps + measured_env_steps], np.int32)
    t0 = time.perf_counter()
    runners, _ = trainer.train_runs_until(runners, stop, np.array([2**31 - 1], np.int32))
    jax.block_until_ready(runners.env_steps)
    return (int(runners.env_steps[0]) - start_steps) / (time.perf_counter() - t0)


def environment_rate(trainer: Trainer, n_envs: int, rounds: int) -> float:
    """Whole episodes with uniformly random available actions through the same rollout code."""
    params = trainer.learner.init(jax.random.PRNGKey(0)).params.agent

    @jax.jit
    def play(key):
        def one(carry, key):
            _, stats = run_episodes(trainer.learner, trainer.env, params, key, n_envs, 1.0)
            return carry + stats.lengths.sum(), None

        return jax.lax.scan(one, 0, jax.random.split(key, rounds))[0]

    jax.block_until_ready(play(jax.random.PRNGKey(0)))
    t0 = time.perf_counter()
    steps = int(play(jax.random.PRNGKey(1)))
    return steps / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--maps", nargs="+", default=["3m", "8m", "3s5z"])
    parser.add_argument("--preset", default="pymarl")
    parser.add_argument("--env-steps", type=int, default=20_000, help="measured training env steps per map")
    args = parser.parse_args()
    print(f"preset {args.preset}; {jax.device_count()} {jax.default_backend()} device(s)")
    print("| map | envs | training env steps/s | env-only, same envs | ratio | env-only, 256 envs |")
    print("|---|---|---|---|---|---|")
    for name in args.maps:
        trainer = Trainer(build_config(preset=args.preset, map=name))
        n_envs = trainer.config.num_envs
        train = training_rate(trainer, args.env_steps)
        ceiling = environment_rate(trainer, n_envs, rounds=max(1, 4000 // (n_envs * 20)))
        wide = environment_rate(trainer, 256, rounds=4)
        print(f"| {name} | {n_envs} | {train:,.0f} | {ceiling:,.0f} | {train / ceiling:.2f} | {wide:,.0f} |",
              flush=True)


if __name__ == "__main__":
    main()
