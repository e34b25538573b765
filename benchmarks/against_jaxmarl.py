"""JaxMARL's own PQN-VDN against this project's pqn_vdn on SMAX maps, at matched settings, side by side.

    python benchmarks/against_jaxmarl.py --jaxmarl DIR [--jaxmarl-python PATH] [--maps 3m 8m]
        [--budget 1000000] [--num-envs 32] [--rollout-steps 128] [--hidden 64] [--minibatches 4] ...

Setup, once: a JaxMARL checkout and a Python that runs their script, as benchmarks/jaxmarl_runs.py says.

JaxMARL's side is their unmodified `baselines/QLearning/pqn_vdn_rnn.py` with their `pqn_vdn_rnn_smax`
config, given hydra overrides only; ours is `qmix train --alg pqn_vdn` with the same settings as key=value.
Each map runs theirs, then ours (jaxmarl_runs.py: the same environment and cores, no compilation cache);
their history is read back from wandb's offline file (one `wandb.log` per update, which their throughput
includes). Reported per map:

- env steps/s while learning: env steps from the first record at or past the second test point to the last
  record (their per-update log; our test points) over the wall time between them, so every compilation is
  behind it (the first training call's, and any later one) and the testing is included;
- greedy win: the test win rate at the budget (theirs: the episodes that end within TEST_NUM_STEPS steps of
  --test-envs greedy environments; ours: --test-envs greedy episodes);
- wall s: the whole process, start-up and compilation included.

Matched: the budget (rounded down to whole rollouts, and to whole test intervals so that both test at the
end), environments, rollout length, width (two Dense-LayerNorm-ReLU layers and a GRU: their NORM_TYPE is
set to layer_norm and NORM_INPUT off, unless --batch-norm keeps their config's batch norm), epochs,
minibatches, RAdam and its step size falling linearly to 0 over the budget, gradient clipping, gamma,
Q(lambda), epsilon's anneal, the time limit (--episode-limit for ours, their SMAX's 100 by default). Not
matched: their learner also sees the MEMORY_WINDOW steps before each rollout (and starts after a rollout of
random actions it does not count), their reward is SMAX's scaled by REW_SCALE and ours SMAC's, so returns
differ while win rates compare; our env steps count real steps only and our run stops at the first rollout
that reaches the budget, so it may train a little past it.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import sys
from pathlib import Path

import jaxmarl_runs as jaxmarl

SCRIPT = Path("baselines/QLearning/pqn_vdn_rnn.py")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jaxmarl", type=Path, help="JaxMARL checkout (the folder holding baselines/QLearning)")
    parser.add_argument("--jaxmarl-python", default=sys.executable, help="Python that runs their script")
    parser.add_argument("--maps", nargs="+", default=["3m", "8m"])
    parser.add_argument("--budget", type=int, default=1_000_000, help="env steps per run")
    parser.add_argument("--num-envs", type=int, default=32)
    parser.add_argument("--rollout-steps", type=int, default=128, help="their NUM_STEPS")
    parser.add_argument("--hidden", type=int, default=64, help="their HIDDEN_SIZE (their SMAX config: 512)")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--minibatches", type=int, default=4)
    parser.add_argument("--lr", type=float, default=2.5e-4)
    parser.add_argument("--gamma", type=float, default=0.99)
    parser.add_argument("--q-lambda", type=float, default=0.85, help="their LAMBDA")
    parser.add_argument("--grad-clip", type=float, default=1.0, help="their MAX_GRAD_NORM")
    parser.add_argument("--eps-finish", type=float, default=0.01)
    parser.add_argument("--eps-decay", type=float, default=0.1, help="epsilon's anneal, a fraction of the budget")
    parser.add_argument("--episode-limit", type=int, default=100, help="our time limit (their SMAX: 100)")
    parser.add_argument("--tests", type=int, default=20, help="test points per run (their TEST_INTERVAL 0.05)")
    parser.add_argument("--test-envs", type=int, default=32, help="their TEST_NUM_ENVS, our test_episodes")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-norm", action="store_true", help="keep their config's batch norm")
    parser.add_argument("--cpus", type=int, help="pin both sides to this many of the allowed cores")
    parser.add_argument("--keep", type=Path, help="keep both sides' run folders here")
    return parser.parse_args()


def plan(args: argparse.Namespace) -> dict:
    """Whole rollouts, and a test interval in rollouts that divides them, so both sides test at the end."""
    if args.num_envs % args.minibatches:
        sys.exit(f"error: --minibatches {args.minibatches} must divide --num-envs {args.num_envs}")
    per_update = args.num_envs * args.rollout_steps
    updates = args.budget // per_update
    if updates < 3 or args.tests < 3:
        sys.exit(f"error: need --tests >= 3 and a --budget of 3 rollouts ({per_update} env steps each) or more")
    interval = max(1, updates // args.tests)
    updates -= updates % interval
    return {"updates": updates, "interval": interval, "budget": updates * per_update,
            "test_interval_env_steps": interval * per_update}


def their_command(args: argparse.Namespace, map_name: str, p: dict, folder: Path) -> list[str]:
    norm = [] if args.batch_norm else ["alg.NORM_TYPE=layer_norm", "alg.NORM_INPUT=False"]
    # int(NUM_UPDATES * TEST_INTERVAL) is their test period in updates; half an update more survives rounding
    test_interval = (p["interval"] + 0.5) / p["updates"]
    return [args.jaxmarl_python, str((args.jaxmarl / SCRIPT).resolve()), "+alg=pqn_vdn_rnn_smax",
            f"alg.MAP_NAME={map_name}", f"alg.TOTAL_TIMESTEPS={p['budget']}", f"alg.NUM_ENVS={args.num_envs}",
            f"alg.NUM_STEPS={args.rollout_steps}", f"alg.HIDDEN_SIZE={args.hidden}", "alg.NUM_LAYERS=2", *norm,
            f"alg.NUM_EPOCHS={args.epochs}", f"alg.NUM_MINIBATCHES={args.minibatches}", f"alg.LR={args.lr}",
            "alg.LR_LINEAR_DECAY=True", f"alg.MAX_GRAD_NORM={args.grad_clip}", f"alg.GAMMA={args.gamma}",
            f"alg.LAMBDA={args.q_lambda}", "alg.EPS_START=1.0", f"alg.EPS_FINISH={args.eps_finish}",
            f"alg.EPS_DECAY={args.eps_decay}", "alg.TEST_DURING_TRAINING=True", f"alg.TEST_INTERVAL={test_interval}",
            f"alg.TEST_NUM_ENVS={args.test_envs}", f"SEED={args.seed}", "NUM_SEEDS=1", "WANDB_MODE=offline",
            "SAVE_PATH=null", f"hydra.run.dir={folder / 'hydra'}"]


def our_command(args: argparse.Namespace, map_name: str, p: dict, folder: Path) -> list[str]:
    settings = {
        "num_envs": args.num_envs, "rollout_steps": args.rollout_steps, "agent": "rnn_norm",
        "agent_hidden_dim": args.hidden, "epochs": args.epochs, "minibatches": args.minibatches, "lr": args.lr,
        "lr_anneal_env_steps": p["budget"], "optimizer": "radam", "grad_norm_clip": args.grad_clip,
        "gamma": args.gamma, "q_lambda": args.q_lambda, "epsilon_start": 1.0, "epsilon_finish": args.eps_finish,
        "epsilon_anneal_env_steps": int(args.eps_decay * p["budget"]), "obs_agent_id": "true",
        "obs_last_action": "false", "episode_limit": args.episode_limit,
        "test_interval_env_steps": p["test_interval_env_steps"], "test_interval_episodes": 0,
        "test_episodes": args.test_envs, "final_evaluation_episodes": 0, "checkpoint_interval_env_steps": 0,
    }
    return [jaxmarl.qmix_command(), "train", "--alg", "pqn_vdn", "--map", map_name, "--seed", str(args.seed), "--env-steps",
            str(p["budget"]), "--out", str(folder / "qmix"), "--force", "--no-progress",
            *(f"{key}={value}" for key, value in settings.items())]


def main() -> None:
    args = parse_args()
    their_jax, our_jax = jaxmarl.check_setup(args, SCRIPT), importlib.metadata.version("jax")
    p = plan(args)
    environment = jaxmarl.child_environment(args)
    print(f"JaxMARL PQN-VDN ({args.jaxmarl / SCRIPT}, {jaxmarl.checkout_commit(args.jaxmarl)}, written for "
          f"{jaxmarl.JAXMARL_COMMIT[:9]}; +alg=pqn_vdn_rnn_smax; jax {their_jax} in {args.jaxmarl_python}) against "
          f"qmix pqn_vdn (jax {our_jax}), one after the other; cores {sorted(os.sched_getaffinity(0))}, "
          f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}")
    print(f"budget {p['budget']:,} env steps = {p['updates']} rollouts of {args.num_envs} envs x {args.rollout_steps} "
          f"steps; width {args.hidden}, 2 Dense-{'BatchNorm (theirs)' if args.batch_norm else 'LayerNorm'}-ReLU + "
          f"GRU; {args.epochs} epochs x {args.minibatches} minibatches; RAdam lr {args.lr} -> 0 over the budget, "
          f"clip {args.grad_clip}; gamma {args.gamma}, lambda {args.q_lambda}; epsilon 1 -> {args.eps_finish} over "
          f"{args.eps_decay:.0%} of the budget; greedy test every {p['test_interval_env_steps']:,} env steps on "
          f"{args.test_envs} envs/episodes; time limit theirs 100, ours {args.episode_limit}; seed {args.seed}")
    jaxmarl.print_table_header("PQN-VDN", "pqn_vdn")
    for map_name in args.maps:
        jaxmarl.compare_on_map(args, map_name, p, "JaxMARL's pqn_vdn_rnn.py", their_command, our_command, environment)


if __name__ == "__main__":
    main()
