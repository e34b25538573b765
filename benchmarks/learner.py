"""How far the replay learner is from the machine's limit: FLOPs, FLOP/s and the share of real steps.

    python benchmarks/learner.py [--maps 3m 8m] [--preset default] [--batches 20] [key=value ...]

For each map: a training run of the preset warms up (compiles, fills the replay past `--warm-env-steps`),
then batches are sampled from its replay as the loop samples them, and for each:
- the share of unrolled (row x step) positions that are real steps, for the packed rows the learner uses
  (packing.py) and for the layout before packing (every episode its own row, the batch cut to the
  shortest of `time_buckets` evenly spaced lengths that held its longest episode);
- the FLOPs of one learner update on it (counted on its jaxpr, flop_count.py), its time (ten updates in
  one compiled loop, as training runs them; and one call per update, for comparison), and the FLOP/s
  achieved;
- the machine's FLOP/s on matrix products of the learner's own shapes (rows x agents by the agent network's
  width, float32), and on one large product, so the efficiency is a percentage of something measured here.
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
from flop_count import count_flops

from qmix.build import make_trainer
from qmix.config import build_config, parse_overrides
from qmix.learn.loop import seed_keys
from qmix.packing import pack_episodes, row_counts, rows_that_fit

# Updates timed inside one compiled loop, as training runs them: a call per update would also time the
# allocation of its temporaries, which a loop reuses (on 3m that doubled the time of an update).
UPDATES_PER_CALL = 10


def seconds_per_call(fn, *args, repeats: int = 10) -> float:
    jax.block_until_ready(fn(*args))
    t0 = time.perf_counter()
    for _ in range(repeats):
        out = fn(*args)
    jax.block_until_ready(out)
    return (time.perf_counter() - t0) / repeats


def matmul_flops_per_second(m: int, k: int, n: int) -> float:
    a, b = jnp.ones((m, k), jnp.float32), jnp.ones((k, n), jnp.float32)
    return 2 * m * k * n / seconds_per_call(jax.jit(jnp.dot), a, b, repeats=50)


def padded_length(longest: int, episode_limit: int, count: int) -> int:
    """The length a batch was cut to before packing: the shortest of `count` evenly spaced lengths."""
    return min(length for length in (-(-episode_limit * (i + 1) // count) for i in range(count)) if length >= longest)


def replay_batches(trainer, warm_env_steps: int, count: int):
    """`count` batches sampled from the replay of a run trained for `warm_env_steps`."""
    runners = trainer.init_runs(seed_keys(trainer.config.seed, 1))
    runners, _ = trainer.train_runs_until(runners, np.array([warm_env_steps], np.int32),
                                          np.array([2**31 - 1], np.int32))
    replay = jax.tree.map(lambda x: x[0], runners.replay)
    sample = jax.jit(lambda replay, key: trainer.buffer.sample(replay, key).experience)  # the replay as an
    # argument: captured as a constant it would be copied into the program (GBs on 8m)
    return [sample(replay, key) for key in jax.random.split(jax.random.PRNGKey(7), count)]


def measure(name: str, preset: str, overrides: dict, warm_env_steps: int, count: int) -> None:
    trainer = make_trainer(build_config(preset=preset, map=name, overrides=overrides))
    algorithm, T = trainer.algorithm, trainer.env.episode_limit
    state = jax.tree.map(lambda x: x[0], trainer.init_runs(seed_keys(0, 1)).alg)
    counts = row_counts(trainer.config.batch_size, algorithm.settings.time_buckets)
    update = jax.jit(algorithm._update)
    updates = jax.jit(lambda state, batch: jax.lax.fori_loop(  # timed as the training loop runs them
        0, UPDATES_PER_CALL, lambda _, state: algorithm._update(state, batch)[0], state))
    rows_of, real, packed_share, padded_share, flops, xla_flops, seconds, alone = [], [], [], [], {}, {}, [], []
    for batch in replay_batches(trainer, warm_env_steps, count):
        lengths = batch.filled.sum(axis=1, dtype=jnp.int32)
        rows = counts[int(jnp.argmax(rows_that_fit(lengths, counts, T + 1)))]
        packed = pack_episodes(batch, rows)
        steps = int(lengths.sum())
        rows_of.append(rows)
        real.append(steps)
        packed_share.append(steps / (rows * T))
        cut = padded_length(int(lengths.max()), T, algorithm.settings.time_buckets)
        padded_share.append(steps / (batch.filled.shape[0] * cut))
        if rows not in flops:
            flops[rows] = count_flops(update, state, packed)
            if flops[rows].loops_unbounded:
                print(f"note: {flops[rows].loops_unbounded} while loop(s) in the update, counted once each")
            xla_flops[rows] = update.lower(state, packed).compile().cost_analysis()["flops"]
        seconds.append(seconds_per_call(updates, state, packed, repeats=3) / UPDATES_PER_CALL)
        alone.append(seconds_per_call(update, state, packed))
    achieved = [flops[rows].matmul / s for rows, s in zip(rows_of, seconds, strict=True)]
    width = algorithm.settings.agent_hidden_dim
    shaped = matmul_flops_per_second(int(np.mean(rows_of)) * algorithm.spec.n_agents, width, 3 * width)
    large = matmul_flops_per_second(2048, 2048, 2048)
    def mean_of(count_of):
        return float(np.mean([count_of(r) for r in rows_of])) / 1e9

    print(f"| {name} | {np.mean(real):,.0f} | {np.mean(rows_of):.0f} of {trainer.config.batch_size} | "
          f"{np.mean(packed_share):.0%} | {np.mean(padded_share):.0%} | {mean_of(lambda r: flops[r].matmul):.2f} | "
          f"{mean_of(lambda r: flops[r].elementwise):.2f} | {mean_of(lambda r: xla_flops[r]):.2f} | "
          f"{np.mean(seconds) * 1e3:.1f} | {np.mean(alone) * 1e3:.1f} | {np.mean(achieved) / 1e9:.1f} | "
          f"{shaped / 1e9:.1f} | {large / 1e9:.1f} | "
          f"{np.mean(achieved) / shaped:.0%} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--maps", nargs="+", default=["3m", "8m"])
    parser.add_argument("--preset", default="default")
    parser.add_argument("--batches", type=int, default=20, help="replay batches measured per map")
    parser.add_argument("--warm-env-steps", type=int, default=50_000,
                        help="env steps trained before sampling (early episodes are longer)")
    parser.add_argument("overrides", nargs="*", help="key=value settings, as on `qmix train`")
    args = parser.parse_args()
    print_header(args.preset, args.overrides, args.batches, args.warm_env_steps)
    for name in args.maps:
        measure(name, args.preset, parse_overrides(args.overrides), args.warm_env_steps, args.batches)


def print_header(preset: str, overrides: list[str], batches: int, warm_env_steps: int) -> None:
    print(f"preset {preset} {' '.join(overrides)}; {jax.device_count()} {jax.default_backend()} "
          f"device(s); {batches} replay batches per map after {warm_env_steps:,} env steps")
    print("| map | real steps per batch | rows (packed) | real share, packed | real share, "
          "before packing | matmul GFLOP per update | other G ops per update | XLA's GFLOP (loops once) | "
          "ms per update, in a loop | ms per update, a call each | matmul GFLOP/s achieved | "
          "GFLOP/s, matmul of its shapes | GFLOP/s, 2048^3 matmul | efficiency |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")


if __name__ == "__main__":
    main()
