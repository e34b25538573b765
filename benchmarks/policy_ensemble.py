"""Do the seeds of a run fail on different games? Greedy win rate of their agent networks played together.

Each agent runs every seed's agent network on its own observations and acts greedily on the mean of their
advantages (Q minus its mean over actions, so that seeds with different value scales count equally): still
decentralised execution. If the seeds' losses were shared, the ensemble would win no more often than its
members; if each loses on its own blind spots, it wins more. Every policy plays the same episodes.

    python benchmarks/policy_ensemble.py RUN_DIR [RUN_DIR ...] [--episodes 512] [--seed 123]

The members are every seed folder of the runs named (which must share a map and networks).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from qmix.envs.heuristic import wilson_interval
from qmix.evaluate import load_final_params
from qmix.learn.learner import Learner
from qmix.learn.rollout import run_episodes
from qmix.learn.train import Trainer
from qmix.run import load_run_config, seed_folders


class EnsembleActor:
    """Acts like a `Learner` in rollouts; its agent parameters are the members' stacked on a leading axis."""

    def __init__(self, learner: Learner, n_members: int):
        self.learner = learner
        self.n_members = n_members

    def initial_hidden(self, *batch: int) -> jax.Array:
        return jnp.stack([self.learner.initial_hidden(*batch)] * self.n_members)  # [M, ..., N, H]

    def act_values(self, stacked_params, hidden, obs, last_actions):
        def member(params, member_hidden):
            return self.learner.act_values(params, member_hidden, obs, last_actions)

        hidden, q = jax.vmap(member)(stacked_params, hidden)  # q [M, ..., N, A]
        advantages = q - q.mean(axis=-1, keepdims=True)
        return hidden, advantages.mean(axis=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dirs", type=Path, nargs="+")
    parser.add_argument("--episodes", type=int, default=512)
    parser.add_argument("--seed", type=int, default=123, help="random seed of the test games")
    args = parser.parse_args()

    config = load_run_config(args.run_dirs[0])
    trainer = Trainer(config)
    folders, members = [], []
    for run_dir in args.run_dirs:
        for folder in seed_folders(run_dir, load_run_config(run_dir)):
            folders.append(folder)
            members.append(load_final_params(folder, trainer, run_dir).agent)
    if len(members) < 2:
        raise SystemExit("an ensemble needs two runs or more: name a run trained with --seeds 2+, or several runs")
    key = jax.random.PRNGKey(args.seed)

    def win_rate(actor, agent_params) -> float:
        play = jax.jit(lambda p: run_episodes(actor, trainer.env, p, key, args.episodes, 0.0)[1].won)
        return float(np.mean(np.asarray(play(agent_params))))

    rows = [(str(folder), win_rate(trainer.learner, params)) for folder, params in zip(folders, members, strict=True)]
    stacked = jax.tree.map(lambda *leaves: jnp.stack(leaves), *members)
    rows.append((f"ensemble of {len(members)}", win_rate(EnsembleActor(trainer.learner, len(members)), stacked)))
    print(f"{config.alg} on {config.map}, {args.episodes} greedy episodes (seed {args.seed}), the same for every policy:")
    for name, rate in rows:
        low, high = wilson_interval(round(rate * args.episodes), args.episodes)
        print(f"  {name}: {100 * rate:.1f}% [{100 * low:.1f}, {100 * high:.1f}]")


if __name__ == "__main__":
    main()
