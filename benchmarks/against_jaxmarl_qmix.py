"""JaxMARL's own QMIX against this project's replay-based qmix on SMAX maps, at matched settings, side by side.

    python benchmarks/against_jaxmarl_qmix.py --jaxmarl DIR [--jaxmarl-python PATH] [--maps 3m 8m]
        [--budget N] [--seed 0] [--cpus 2] [--keep DIR]

Setup, once: a JaxMARL checkout and a Python that runs their script, as benchmarks/jaxmarl_runs.py says.

JaxMARL's side is their unmodified `baselines/QLearning/qmix_rnn.py` with their `ql_rnn_smax` config and
hydra overrides only: HIDDEN_SIZE=64 MIXER_EMBEDDING_DIM=32 MIXER_HYPERNET_HIDDEN_DIM=64 NUM_ENVS=16, the map
and the budget. Each update collects 16 environments x 128 steps (2,048 env steps) and makes 8 gradient
steps on 32 sequences of 128 steps: one gradient step per 256 env steps on 4,096 (timestep x sequence)
rows; 512 greedy environments of 128 steps are tested every 5% of the updates.

Ours is `qmix train` with the default preset (PyMARL's QMIX) and the same sizes: PyMARL-sized networks
(GRU 64, mixing 32, two hypernetwork layers of 64), gamma 0.99, 16 environments, one gradient step per 16
episodes (`updates_per_episode=0.0625`, ~256 env steps on 3m) on 256 whole episodes (~4,100 real rows on
3m), and 512 greedy test episodes at their test points.

Not matched: their sequences are fixed 128-step windows of the environments' streams, ours whole episodes;
their learning rate (5e-5), target updates (every 10 updates), learning start (10,000 env steps), epsilon
(1 -> 0.05 over 10% of the updates) and reward scale (SMAX's times 10) are their config's; ours are the
default preset's (Adam 1e-3, target copied every 200 episodes, epsilon 1 -> 0.05 over 100k env steps, TD(0.6),
double Q, SMAC's reward; `qmix config` lists them). So the win rates say how each side's defaults learn at
that budget, and the speeds compare the same work per env step. Reported per map, as benchmarks/against_jaxmarl.py
reports it (after the second test point, so every compilation is behind): env steps/s, the last greedy win
rate, wall seconds of each process.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import sys
from pathlib import Path

import jaxmarl_runs as jaxmarl

SCRIPT = Path("baselines/QLearning/qmix_rnn.py")
BUDGETS = {"3m": 1_000_000, "8m": 300_000}  # the budgets first measured
ROLLOUT = 16 * 128  # their env steps per update
TEST_FRACTION = 0.05  # their TEST_INTERVAL: a test every 5% of the updates


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jaxmarl", type=Path, help="JaxMARL checkout (the folder holding baselines/QLearning)")
    parser.add_argument("--jaxmarl-python", default=sys.executable, help="Python that runs their script")
    parser.add_argument("--maps", nargs="+", default=list(BUDGETS))
    parser.add_argument("--budget", type=int, help=f"env steps per run (default per map: {BUDGETS}, else 1M)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cpus", type=int, help="pin both sides to this many of the allowed cores")
    parser.add_argument("--keep", type=Path, help="keep both sides' run folders here")
    return parser.parse_args()


def plan(budget: int) -> dict:
    """Their whole updates, and the env steps between their tests (ours test there too)."""
    updates = budget // ROLLOUT
    interval = int(updates * TEST_FRACTION)
    if interval < 1:
        raise SystemExit(f"error: a budget of {budget:,} env steps is under 20 of their updates ({ROLLOUT:,} each)")
    return {"budget": updates * ROLLOUT, "test_interval_env_steps": interval * ROLLOUT}


def their_command(args: argparse.Namespace, map_name: str, p: dict, folder: Path) -> list[str]:
    return [args.jaxmarl_python, str((args.jaxmarl / SCRIPT).resolve()), "+alg=ql_rnn_smax",
            f"alg.MAP_NAME={map_name}", f"alg.TOTAL_TIMESTEPS={p['budget']}", "alg.HIDDEN_SIZE=64",
            "alg.MIXER_EMBEDDING_DIM=32", "alg.MIXER_HYPERNET_HIDDEN_DIM=64", "alg.NUM_ENVS=16",
            f"SEED={args.seed}", "NUM_SEEDS=1", "WANDB_MODE=offline", "SAVE_PATH=null",
            f"hydra.run.dir={folder / 'hydra'}"]


def our_command(args: argparse.Namespace, map_name: str, p: dict, folder: Path) -> list[str]:
    settings = {
        "num_envs": 16, "batch_size": 256, "updates_per_episode": 0.0625, "agent_hidden_dim": 64,
        "mixing_embed_dim": 32, "hypernet_layers": 2, "hypernet_embed_dim": 64, "gamma": 0.99,
        "test_interval_env_steps": p["test_interval_env_steps"], "test_episodes": 512,
        "final_evaluation_episodes": 0, "checkpoint_interval_env_steps": 0,
    }
    return [jaxmarl.qmix_command(), "train", "--preset", "default", "--alg", "qmix", "--map", map_name, "--seed",
            str(args.seed), "--env-steps", str(p["budget"]), "--out", str(folder / "qmix"), "--force",
            "--no-progress", *(f"{key}={value}" for key, value in settings.items())]


def main() -> None:
    args = parse_args()
    their_jax, our_jax = jaxmarl.check_setup(args, SCRIPT), importlib.metadata.version("jax")
    environment = jaxmarl.child_environment(args)
    print(f"JaxMARL QMIX ({args.jaxmarl / SCRIPT}, {jaxmarl.checkout_commit(args.jaxmarl)}, written for {jaxmarl.JAXMARL_COMMIT[:9]}; "
          f"+alg=ql_rnn_smax; jax {their_jax} in {args.jaxmarl_python}) against qmix's QMIX (jax {our_jax}), one "
          f"after the other; cores {sorted(os.sched_getaffinity(0))}, XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}; "
          f"seed {args.seed}")
    jaxmarl.print_table_header("QMIX", "QMIX")
    for map_name in args.maps:
        p = plan(args.budget or BUDGETS.get(map_name, 1_000_000))
        jaxmarl.compare_on_map(args, map_name, p, "JaxMARL's qmix_rnn.py", their_command, our_command, environment)


if __name__ == "__main__":
    main()
