"""Where does a trained SMAX policy lose? Win probability per starting layout, and what the hard ones share.

Each of `--starts` starting layouts (unit positions drawn by the map's reset) is replayed `--replays` times
with the final greedy parameters of a run and different in-game randomness (weapon cooldowns, the enemy
script's choices). A layout's win probability is its share of won replays. If the losses were evenly
spread noise, every layout would sit near the overall win rate; if they gather on some layouts, the
printed features say what those layouts look like (spreads in map units: the largest distance between two
units of a team, and the extent of a team along x, the axis the teams close on).

    python docs/studies/smax-3m-8m-plateau/start_difficulty.py RUN_DIR [RUN_DIR ...] [--starts 256] [--replays 32]

With several policies (seed folders, runs, or `--agent-params` snapshots of one run) it also tells whether
they lose on the same layouts.

The study's numbers were measured with the library before its algorithm/loop redesign (commit a9e3f31);
this script plays the same games with today's API (the golden runs in tests/ pin that the redesign
changed no result).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from qmix.build import make_trainer
from qmix.envs import make_env
from qmix.errors import ConfigError
from qmix.learn.loop import Trainer
from qmix.learn.rollout import policy_step
from qmix.policies import decode, load_final, saved_templates
from qmix.run import load_run_config
from qmix.run_folder import seed_folders


def load_agent_file(path: Path, trainer: Trainer):
    """An agent network saved as flax msgpack (a snapshot of a value-decomposition run), or one line why not."""
    if not path.is_file():
        raise ConfigError(f"agent-network file '{path}' does not exist")
    return decode(path, saved_templates(trainer)["params"].agent)

def greedy_win(trainer: Trainer, agent_params, start_key: jax.Array, play_key: jax.Array) -> jax.Array:
    """One greedy episode from the layout `reset(start_key)`, in-game randomness from `play_key`: -> won."""
    env, algorithm = trainer.env, trainer.algorithm
    policy = algorithm.greedy(agent_params)  # epsilon 0 (value-decomposition algorithms)
    env_state, timestep = env.reset(start_key)

    def step(carry, _):
        key, env_state, timestep, actor_state, done, won = carry
        key, step_key, actor_state, actions = policy_step(  # a batch of one environment: [1, N, ...]
            algorithm, policy, key, actor_state, timestep.obs[None], timestep.avail_actions[None],
        )
        new_state, new_timestep = env.step(step_key, env_state, actions[0])
        keep = lambda new, old: jax.tree.map(lambda n, o: jnp.where(done, o, n), new, old)  # noqa: E731
        won = won | (~done & new_timestep.won)
        done = done | new_timestep.terminated | new_timestep.truncated
        return (key, keep(new_state, env_state), keep(new_timestep, timestep), actor_state, done, won), None

    # the actor state (RNN hidden state, previous actions) is the algorithm's own, for one environment
    carry = (play_key, env_state, timestep, algorithm.initial_actor_state(1), jnp.array(False), jnp.array(False))
    carry, _ = jax.lax.scan(step, carry, None, length=env.episode_limit)
    return carry[-1]


def layout_features(positions: np.ndarray, n_allies: int) -> dict[str, np.ndarray]:
    """positions [S, U, 2] at the start -> named per-layout features [S]."""

    def widest(team: np.ndarray) -> np.ndarray:  # [S, K, 2] -> [S] largest pairwise distance
        return np.linalg.norm(team[:, :, None] - team[:, None], axis=-1).max(axis=(1, 2))

    allies, enemies = positions[:, :n_allies], positions[:, n_allies:]
    return {
        "ally spread": widest(allies),
        "enemy spread": widest(enemies),
        "ally extent along x": np.ptp(allies[..., 0], axis=1),
        "enemy extent along x": np.ptp(enemies[..., 0], axis=1),
        "enemy extent along y": np.ptp(enemies[..., 1], axis=1),
    }


def layout_win_probabilities(run_dir: Path, starts: jax.Array, plays: jax.Array,
                             agent_files: list[Path]) -> list[tuple[Path, np.ndarray]]:
    """(policy, [starts] share of the replays of each layout that were won) for every seed folder of a run,
    or, given agent-parameter files (flax msgpack, e.g. snapshots of a run), for each of those instead."""
    config = load_run_config(run_dir)
    trainer = make_trainer(config)
    play = jax.jit(jax.vmap(jax.vmap(lambda params, s, p: greedy_win(trainer, params, s, p), in_axes=(None, None, 0)),
                            in_axes=(None, 0, 0)))
    if agent_files:
        policies = [(path, load_agent_file(path, trainer)) for path in agent_files]
    else:
        policies = [(folder, load_final(folder, trainer, run_dir).agent)
                    for folder in seed_folders(run_dir, config)]
    return [(name, np.asarray(play(params, starts, plays)).mean(axis=1)) for name, params in policies]


def describe(folder: Path, p: np.ndarray, features: dict[str, np.ndarray]) -> None:
    losses = 1.0 - p
    hard, easy = p < 0.8, p >= 0.95
    quantiles = ", ".join(f"{q:.0%}: {v:.2f}" for q, v in zip((0.1, 0.25, 0.5), np.quantile(p, (0.1, 0.25, 0.5)),
                                                               strict=True))
    print(f"\n{folder}: win rate over all replays {p.mean():.1%}; per layout, quantiles {quantiles}, "
          f"standard deviation {p.std():.2f}")
    print(f"layouts won >= 95% of the time: {easy.mean():.1%}; below 80%: {hard.mean():.1%}, "
          f"holding {losses[hard].sum() / max(losses.sum(), 1e-9):.1%} of all losses")
    print("| layout feature | correlation with win probability | mean, layouts below 80% | mean, layouts >= 95% |")
    print("|---|---|---|---|")
    for name, values in features.items():
        print(f"| {name} | {np.corrcoef(values, p)[0, 1]:+.2f} | {values[hard].mean():.2f} | {values[easy].mean():.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dirs", nargs="+", type=Path, help="run folders on one map (every seed folder counts)")
    parser.add_argument("--starts", type=int, default=256)
    parser.add_argument("--replays", type=int, default=32)
    parser.add_argument("--seed", type=int, default=777)
    parser.add_argument("--agent-params", nargs="+", type=Path, default=[],
                        help="agent-parameter files to compare instead (one run folder gives their config)")
    args = parser.parse_args()

    start_key, play_key = jax.random.split(jax.random.PRNGKey(args.seed))
    starts = jax.random.split(start_key, args.starts)
    plays = jax.random.split(play_key, args.starts * args.replays).reshape(args.starts, args.replays, -1)
    # every policy meets the same layouts with the same in-game randomness
    policies = [result for run_dir in args.run_dirs
                for result in layout_win_probabilities(run_dir, starts, plays, args.agent_params)]

    config = load_run_config(args.run_dirs[0])
    env = make_env(config)  # the run's map, reward and episode limit
    positions = np.asarray(jax.vmap(lambda k: env.reset(k)[0].state.unit_positions)(starts))
    features = layout_features(positions, env.n_agents)
    print(f"{env.name}: {args.starts} starting layouts x {args.replays} greedy replays per policy")
    for folder, p in policies:
        describe(folder, p, features)
    if len(policies) > 1:
        # If the losses came from layouts that are hard in themselves, the policies would agree on them.
        table = np.stack([p for _, p in policies])
        correlations = np.corrcoef(table)[np.triu_indices(len(policies), k=1)]
        print(f"\nbetween policies, correlation of per-layout win probabilities: "
              f"{', '.join(f'{c:+.2f}' for c in correlations)}")
        print(f"layouts below 80% for one policy or more: {(table < 0.8).any(axis=0).mean():.1%}; "
              f"for every policy: {(table < 0.8).all(axis=0).mean():.1%}")


if __name__ == "__main__":
    try:
        main()
    except ConfigError as error:  # bad input: one line, exit code 1
        raise SystemExit(f"error: {error}") from None
