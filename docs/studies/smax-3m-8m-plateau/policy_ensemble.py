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
network, its averaged one (runs with average_policy=true) and those of its older kept checkpoints.
With --agent-params the members are agent-network files of the run's networks (e.g. snapshots).

The study's numbers were measured with the library before its algorithm/loop redesign (commit a9e3f31);
this script plays the same games with today's API (the golden runs in tests/ pin that the redesign
changed no result).
"""

from __future__ import annotations

import argparse
from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from qmix.algorithms.value_decomposition.acting import select_actions
from qmix.algorithms.value_decomposition.algorithm import ValueDecomposition
from qmix.build import make_trainer
from qmix.checkpoint import CheckpointStore
from qmix.envs.heuristic import wilson_interval
from qmix.errors import ConfigError
from qmix.learn.loop import Trainer, run_slice
from qmix.learn.rollout import run_episodes
from qmix.policies import checkpoint_state, decode, load_final, saved_templates
from qmix.results.stats import mean_ci
from qmix.run import load_run_config
from qmix.run_folder import seed_folders


class Ensemble:
    """Plays like the algorithm in `run_episodes`: its policy is the members' agent networks stacked on a
    leading axis M, and every agent acts greedily on the mean of their advantages."""

    def __init__(self, algorithm: ValueDecomposition, n_members: int):
        self.algorithm = algorithm
        self.n_members = n_members

    def initial_actor_state(self, n_envs: int):
        hidden, last_actions = self.algorithm.initial_actor_state(n_envs)
        return jnp.stack([hidden] * self.n_members), last_actions  # each member keeps its own RNN state

    def act(self, stacked_agents, actor_state, key, obs, avail):
        hidden, last_actions = actor_state

        def member(agent_params, member_hidden):
            return self.algorithm.agent_values(agent_params, member_hidden, obs, last_actions)

        hidden, q = jax.vmap(member)(stacked_agents, hidden)  # q [M, E, N, A]
        advantages = q - q.mean(axis=-1, keepdims=True)  # members with different value scales count equally
        actions = select_actions(key, advantages.mean(axis=0), avail, jnp.float32(0.0))  # greedy
        return (hidden, actions), actions



def load_agent_file(path: Path, trainer: Trainer):
    """An agent network saved as flax msgpack (a snapshot of a value-decomposition run), or one line why not."""
    if not path.is_file():
        raise ConfigError(f"agent-network file '{path}' does not exist")
    return decode(path, saved_templates(trainer)["params"].agent)

def same_params(a, b) -> bool:
    return all(bool(jnp.array_equal(x, y)) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True))


def networks_of_each_seed(run_dir: Path) -> list[list[tuple[str, object]]]:
    """Per seed folder: (name, agent params) of its final, averaged and older checkpointed networks."""
    config = load_run_config(run_dir)
    trainer = make_trainer(config)  # this run's own: its checkpoints hold its algorithm state (averaged or not)
    averaging = getattr(config.algorithm, "average_policy", False)
    folders = seed_folders(run_dir, config)
    per_seed = [[("final", load_final(folder, trainer, run_dir).agent)] for folder in folders]
    if averaging:
        for networks, folder in zip(per_seed, folders, strict=True):
            networks.append(("final averaged", load_final(folder, trainer, run_dir, "averaged_agent")))
    store = CheckpointStore(run_dir, config.keep_checkpoints, create=False, read_only=True)
    checkpoint_steps = store.complete_steps()
    store.close()
    for step in checkpoint_steps:
        alg_state, _ = checkpoint_state(run_dir, trainer, at_most=step)  # every seed, [S, ...]
        kinds = [("", alg_state.params.agent)] + ([(" averaged", alg_state.average_agent)] if averaging else [])
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
    trainer = make_trainer(config)
    algorithm = trainer.algorithm
    key = jax.random.PRNGKey(args.seed)

    @partial(jax.jit, static_argnums=0)  # compiled once per actor: every single network reuses one program
    def wins(actor, policy) -> jax.Array:
        return run_episodes(actor, trainer.env, policy, key, args.episodes)[1].won

    def win_rate(actor, policy) -> float:
        return float(np.mean(np.asarray(wins(actor, policy))))

    def ensemble_rate(members) -> float:
        stacked = jax.tree.map(lambda *leaves: jnp.stack(leaves), *members)
        return win_rate(Ensemble(algorithm, len(members)), stacked)

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
                rates = [win_rate(algorithm, algorithm.greedy(params)) for _, params in networks]
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
            members.append(load_final(folder, trainer, run_dir).agent)
    if len(members) < 2:
        raise SystemExit("an ensemble needs two runs or more: name a run trained with --seeds 2+, or several runs")
    for folder, params in zip(folders, members, strict=True):
        show(str(folder), win_rate(algorithm, algorithm.greedy(params)))
    show(f"ensemble of {len(members)}", ensemble_rate(members))


if __name__ == "__main__":
    try:
        main()
    except ConfigError as error:  # bad input: one line, exit code 1
        raise SystemExit(f"error: {error}") from None
