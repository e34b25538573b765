"""Do policies fail on different games? Greedy win rate of several agent networks played together.

Each agent runs every member's agent network on its own observations and acts greedily on the mean of their
advantages (Q minus its mean over actions, so that members with different value scales count equally): still
decentralised execution. If the members' losses were shared, the ensemble would win no more often than its
members; if each loses on its own blind spots, it wins more. Every policy plays the same episodes.

    python docs/studies/smax-3m-8m-plateau/policy_ensemble.py RUN_DIR [RUN_DIR ...] [--episodes 512] [--seed 123]
    python docs/studies/smax-3m-8m-plateau/policy_ensemble.py RUN_DIR --within-seeds
    python docs/studies/smax-3m-8m-plateau/policy_ensemble.py RUN_DIR --agent-params AGENT.msgpack AGENT.msgpack ...

By default the members are every seed folder of the runs named (which must share a map and networks).
With --within-seeds each seed is its own ensemble, of networks from its one run only: its final agent
network, its averaged one (runs with policy_average_tau > 0) and those of its older kept checkpoints.
With --agent-params the members are agent-network files of the run's networks (e.g. snapshots).

These analyses ran with the library as it was before its algorithm/loop redesign (commit a9e3f31, the
numbers in the study); to rerun them, check that commit out (`git worktree add ../qmix-a9e3f31 a9e3f31`)
and run the script there.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from qmix.checkpoint import CheckpointStore
from qmix.config import ConfigError
from qmix.envs.heuristic import wilson_interval
from qmix.evaluate import checkpoint_learner, load_agent_file, load_final_averaged_agent, load_final_params
from qmix.learn.learner import Learner
from qmix.learn.rollout import run_episodes
from qmix.learn.train import Trainer, run_slice
from qmix.results.stats import mean_ci
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


def same_params(a, b) -> bool:
    return all(bool(jnp.array_equal(x, y)) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True))


def networks_of_each_seed(run_dir: Path) -> list[list[tuple[str, object]]]:
    """Per seed folder: (name, agent params) of its final, averaged and older checkpointed networks."""
    config = load_run_config(run_dir)
    trainer = Trainer(config)  # this run's own: its checkpoints hold its learner state (averaged or not)
    averaging = config.policy_average_tau > 0
    folders = seed_folders(run_dir, config)
    per_seed = [[("final", load_final_params(folder, trainer, run_dir).agent)] for folder in folders]
    if averaging:
        for networks, folder in zip(per_seed, folders, strict=True):
            networks.append(("final averaged", load_final_averaged_agent(folder, trainer, run_dir)))
    store = CheckpointStore(run_dir, config.keep_checkpoints, create=False, read_only=True)
    checkpoint_steps = store.complete_steps()
    store.close()
    for step in checkpoint_steps:
        learner, _ = checkpoint_learner(run_dir, config, trainer, at_most=step)
        kinds = [("", learner.params.agent)] + ([(" averaged", learner.average_agent)] if averaging else [])
        for suffix, stacked in kinds:
            for k, networks in enumerate(per_seed):
                agent = run_slice(stacked, k)
                if not any(same_params(agent, known) for _, known in networks):  # the end's checkpoint = final
                    networks.append((f"checkpoint {step}{suffix}", agent))
    return per_seed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dirs", type=Path, nargs="+")
    parser.add_argument("--episodes", type=int, default=512)
    parser.add_argument("--seed", type=int, default=123, help="random seed of the test games")
    parser.add_argument("--within-seeds", action="store_true",
                        help="one ensemble per seed, of that seed's final, averaged and checkpointed networks")
    parser.add_argument("--agent-params", nargs="+", type=Path, default=[],
                        help="agent-network files (flax msgpack) of the run's networks: the members")
    args = parser.parse_args()
    if args.within_seeds and args.agent_params:
        raise SystemExit("--within-seeds takes the networks from the run folders; drop --agent-params")

    config = load_run_config(args.run_dirs[0])
    trainer = Trainer(config)
    key = jax.random.PRNGKey(args.seed)

    def win_rate(actor, agent_params) -> float:
        play = jax.jit(lambda p: run_episodes(actor, trainer.env, p, key, args.episodes, 0.0)[1].won)
        return float(np.mean(np.asarray(play(agent_params))))

    def ensemble_rate(members) -> float:
        stacked = jax.tree.map(lambda *leaves: jnp.stack(leaves), *members)
        return win_rate(EnsembleActor(trainer.learner, len(members)), stacked)

    def show(name: str, rate: float) -> None:
        low, high = wilson_interval(round(rate * args.episodes), args.episodes)
        print(f"  {name}: {100 * rate:.1f}% [{100 * low:.1f}, {100 * high:.1f}]", flush=True)

    print(f"{config.alg} on {config.map}, {args.episodes} greedy episodes (seed {args.seed}), the same for every policy:")
    if args.within_seeds:
        finals, ensembles = [], []
        for run_dir in args.run_dirs:
            for folder, networks in zip(seed_folders(run_dir, load_run_config(run_dir)),
                                        networks_of_each_seed(run_dir), strict=True):
                print(f"{folder}:")
                rates = [win_rate(trainer.learner, params) for _, params in networks]
                for (name, _), rate in zip(networks, rates, strict=True):
                    show(name, rate)
                finals.append(rates[0])  # the final network comes first
                ensembles.append(ensemble_rate([params for _, params in networks]))
                show(f"ensemble of these {len(networks)}", ensembles[-1])
        for name, rates in (("final networks", finals), ("ensembles", ensembles)):
            _, half_width, _ = mean_ci(np.array(rates))
            print(f"mean over {len(rates)} seeds, {name}: {100 * np.mean(rates):.1f}% +- {100 * half_width:.1f}")
        return

    folders, members = [], []
    for path in args.agent_params:
        folders.append(path)
        members.append(load_agent_file(path, trainer))
    for run_dir in [] if args.agent_params else args.run_dirs:
        for folder in seed_folders(run_dir, load_run_config(run_dir)):
            folders.append(folder)
            members.append(load_final_params(folder, trainer, run_dir).agent)
    if len(members) < 2:
        raise SystemExit("an ensemble needs two runs or more: name a run trained with --seeds 2+, or several runs")
    for folder, params in zip(folders, members, strict=True):
        show(str(folder), win_rate(trainer.learner, params))
    show(f"ensemble of {len(members)}", ensemble_rate(members))


if __name__ == "__main__":
    try:
        main()
    except ConfigError as error:  # bad input: one line, exit code 1
        raise SystemExit(f"error: {error}") from None
