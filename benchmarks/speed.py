"""Training throughput against the environment-only ceiling, on the same vmapped environments.

    python benchmarks/speed.py [--maps 3m 8m 3s5z] [--preset pymarl] [--env-steps 20000] [--learner]
                               [--against REF | --algs A B ... | --env-only]

For each map: env steps per second of the compiled training loop (collection + replay + learner updates at
the preset's ratio, after compilation and once the replay can be sampled), the environment alone with random
available actions on the same number of environments (the ceiling of that loop), and the ratio. A second
ceiling with many environments shows what SMAX itself can do on this machine. Figures from one process,
one after the other, so the ratios hold even on a busy machine better than the absolute numbers.

`--against REF` (a git commit or branch) measures the same maps with that version of the library too,
map by map in turns (old, new), and prints both training rates and their ratio.

`--env-only` measures only the environments (any registered map), at the preset's num_envs and at 256.

`--learner` adds, per map, the replay learner's FLOPs per update, the FLOP/s it achieves against this
machine's matmul rate on the same shapes (its efficiency) and the share of unrolled steps that are real, not
padding: `benchmarks/learner.py`'s table, on 10 batches after 20,000 env steps.

`--algs qmix cw_qmix ...` measures algorithms side by side instead, map by map with the same preset: the
training rate, and the cost of one learner update alone (on a batch of the preset's batch_size episodes, or
for an on-policy algorithm on one iteration's num_envs episodes or rollouts), each beside the first
algorithm's.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jax
import numpy as np

from qmix.build import make_trainer
from qmix.config import build_config
from qmix.learn.loop import Trainer, seed_keys
from qmix.learn.rollout import run_episodes
from qmix.learn.step_collection import run_steps, start_collector

ROOT = Path(__file__).resolve().parent.parent


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
    algorithm = trainer.algorithm
    policy = algorithm.greedy(algorithm.init(jax.random.PRNGKey(0)).params.agent).replace(epsilon=1.0)

    @jax.jit
    def play(key):
        def one(carry, key):
            _, stats = run_episodes(algorithm, trainer.env, policy, key, n_envs)
            return carry + stats.lengths.sum(), None

        return jax.lax.scan(one, 0, jax.random.split(key, rounds))[0]

    jax.block_until_ready(play(jax.random.PRNGKey(0)))
    t0 = time.perf_counter()
    steps = int(play(jax.random.PRNGKey(1)))
    return steps / (time.perf_counter() - t0)


def update_cost(trainer: Trainer, repeats: int = 20) -> float:
    """Seconds per `update` call on a batch the algorithm's own exploring policy collected (whole episodes, or
    for a step-collecting algorithm one rollout of every environment)."""
    algorithm, config = trainer.algorithm, trainer.config
    state = algorithm.init(jax.random.PRNGKey(0))
    size = config.batch_size if algorithm.uses_replay else config.num_envs
    policy = algorithm.acting_policy(state, jax.numpy.int32(0))
    if trainer.rollout_steps:
        collector = start_collector(algorithm, trainer.env, jax.random.PRNGKey(3), size)
        batch = jax.jit(lambda key: run_steps(algorithm, trainer.env, policy, key, collector,
                                              trainer.rollout_steps)[1])(jax.random.PRNGKey(1))
    else:
        batch, _ = jax.jit(lambda key: run_episodes(algorithm, trainer.env, policy, key, size))(jax.random.PRNGKey(1))
    update = jax.jit(algorithm.update)
    keys = jax.random.split(jax.random.PRNGKey(2), repeats + 1)
    jax.block_until_ready(update(state, batch, keys[0]))  # compile
    t0 = time.perf_counter()
    for key in keys[1:]:
        state, _, _ = update(state, batch, key)
    jax.block_until_ready(state)
    return (time.perf_counter() - t0) / repeats


def compare_algorithms(algs: list[str], maps: list[str], preset: str, env_steps: int) -> None:
    print(f"preset {preset}; {jax.device_count()} {jax.default_backend()} device(s); algorithms side by side, "
          f"each beside {algs[0]}")
    print(f"| map | algorithm | training env steps/s | / {algs[0]} | ms per update | / {algs[0]} |")
    print("|---|---|---|---|---|---|")
    for name in maps:
        first = None
        for alg in algs:
            trainer = make_trainer(build_config(preset=preset, map=name, alg=alg))
            rate, cost = training_rate(trainer, env_steps), update_cost(trainer)
            first = first or (rate, cost)
            print(f"| {name} | {alg} | {rate:,.0f} | {rate / first[0]:.2f} | {1000 * cost:.1f} | "
                  f"{cost / first[1]:.2f} |", flush=True)


def environments_only(maps: list[str], preset: str) -> None:
    print(f"preset {preset}; {jax.device_count()} {jax.default_backend()} device(s); random available actions")
    print("| map | agents | episode limit | env steps/s, preset's envs | env steps/s, 256 envs |")
    print("|---|---|---|---|---|")
    for name in maps:
        trainer = make_trainer(build_config(preset=preset, map=name))  # the preset's algorithm only acts, at epsilon 1
        n_envs, env = trainer.config.num_envs, trainer.env
        rounds = max(1, 4000 // (n_envs * env.episode_limit // 2 + 1))
        narrow, wide = environment_rate(trainer, n_envs, rounds), environment_rate(trainer, 256, rounds=2)
        print(f"| {name} | {env.n_agents} | {env.episode_limit} | {narrow:,.0f} ({n_envs}) | {wide:,.0f} |", flush=True)


def rate_of_version(ref_tree: Path, name: str, preset: str, env_steps: int) -> float:
    """The training rate on `name` measured by the copy of this script in another version's tree."""
    env = {**os.environ, "PYTHONPATH": str(ref_tree / "src")}
    command = [sys.executable, str(ref_tree / "benchmarks" / "speed.py"), "--maps", name, "--preset", preset,
               "--env-steps", str(env_steps)]
    out = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
    row = next(line for line in out.splitlines() if line.startswith(f"| {name} |"))
    return float(row.split("|")[3].replace(",", ""))


def compare(ref: str, maps: list[str], preset: str, env_steps: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / "ref"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), ref], check=True,
                       capture_output=True)
        try:
            print(f"preset {preset}; training env steps/s, {ref} (old) and this tree (new), map by map in turns")
            print("| map | old | new | new / old |")
            print("|---|---|---|---|")
            for name in maps:
                old = rate_of_version(tree, name, preset, env_steps)
                new = training_rate(make_trainer(build_config(preset=preset, map=name)), env_steps)
                print(f"| {name} | {old:,.0f} | {new:,.0f} | {new / old:.2f} |", flush=True)
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--maps", nargs="+", default=["3m", "8m", "3s5z"])
    parser.add_argument("--preset", default="pymarl")
    parser.add_argument("--env-steps", type=int, default=20_000, help="measured training env steps per map")
    parser.add_argument("--against", metavar="REF", help="also measure this git commit's version, side by side")
    parser.add_argument("--algs", nargs="+", help="measure these algorithms side by side (the first is the baseline)")
    parser.add_argument("--env-only", action="store_true", help="only the environments: random available actions "
                        "through the same rollout code, at the preset's num_envs and at 256")
    parser.add_argument("--learner", action="store_true", help="also the learner's FLOPs, efficiency and real-step "
                        "share per map (benchmarks/learner.py)")
    args = parser.parse_args()
    if args.env_only:
        environments_only(args.maps, args.preset)
        return
    if args.algs:
        compare_algorithms(args.algs, args.maps, args.preset, args.env_steps)
        return
    if args.against:
        compare(args.against, args.maps, args.preset, args.env_steps)
        return
    print(f"preset {args.preset}; {jax.device_count()} {jax.default_backend()} device(s)")
    print("| map | envs | training env steps/s | env-only, same envs | ratio | env-only, 256 envs |")
    print("|---|---|---|---|---|---|")
    for name in args.maps:
        trainer = make_trainer(build_config(preset=args.preset, map=name))
        n_envs = trainer.config.num_envs
        train = training_rate(trainer, args.env_steps)
        ceiling = environment_rate(trainer, n_envs, rounds=max(1, 4000 // (n_envs * 20)))
        wide = environment_rate(trainer, 256, rounds=4)
        print(f"| {name} | {n_envs} | {train:,.0f} | {ceiling:,.0f} | {train / ceiling:.2f} | {wide:,.0f} |",
              flush=True)
    if args.learner:
        import learner  # benchmarks/learner.py, beside this script

        learner.print_header(args.preset, [], batches=10, warm_env_steps=20_000)
        for name in args.maps:
            learner.measure(name, args.preset, {}, warm_env_steps=20_000, count=10)


if __name__ == "__main__":
    main()
