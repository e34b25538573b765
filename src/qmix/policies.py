"""A finished run's policies, through the algorithm protocol: what `saved_parameters` named and
`policy_from_saved` plays. Used by `qmix evaluate`, `qmix render`, sweeps' evaluations and scripts.

    policy = qmix.load_policy("runs/3m-qmix")           # the first seed's final parameters
    actions = policy.act(obs, avail)                    # obs [N, O], avail [N, A] -> [N] int32
    policy.reset()                                      # at the start of every episode

`which` names a saved tree ("params": every algorithm's main one; e.g. "averaged_agent" for a
value-decomposition run trained with average_policy=true); `checkpoint_step` reads a checkpoint instead.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import serialization

from qmix.build import make_trainer
from qmix.checkpoint import CheckpointStore
from qmix.config import Config
from qmix.errors import ConfigError
from qmix.learn.loop import Trainer, run_slice, seed_keys
from qmix.run_folder import (
    KEPT_FILE,
    parameter_binding,
    parameter_file,
    seed_folders,
    verified_parameter_bytes,
)

MAIN = "params"  # the tree every algorithm saves first


def saved_templates(trainer: Trainer) -> dict[str, Any]:
    """The structure of every tree the algorithm saves at the end of a run, by name (nothing is computed)."""
    state = jax.eval_shape(trainer.algorithm.init, jax.random.PRNGKey(0))
    return jax.tree.map(lambda x: np.zeros(x.shape, x.dtype), trainer.algorithm.saved_parameters(state))


def check_saved_name(trainer: Trainer, which: str, run_dir: Path) -> None:
    names = list(saved_templates(trainer))
    if which not in names:
        raise ConfigError(f"'{run_dir}' keeps no '{which}' parameters: {trainer.config.alg} with its settings saves "
                          f"{', '.join(names)}; ask for one of those")


def load_final(folder: Path, trainer: Trainer, config: Config, run_dir: Path, which: str = MAIN) -> Any:
    """The tree `which` that `qmix train` wrote in `folder` (of `run_dir`, whose config is `config`) at the
    end, verified against the run's parameter manifest, or a one-line ConfigError why not. (The trainer's own
    config may be another run's of the same programs: build.make_trainer.)"""
    check_saved_name(trainer, which, run_dir)
    path = folder / parameter_file(which)
    if not path.is_file() and any((f / KEPT_FILE).is_file() for f in (path.parent, path.parent.parent)):
        raise ConfigError(f"'{path.parent}' is a kept summary of a finished run: its parameters were left out "
                          f"({KEPT_FILE} says so); use the run folder it was copied from")
    if not path.is_file():
        raise ConfigError(
            f"no final parameters in '{path.parent}' ({path.name} is written when training ends); "
            f"finish the run with `qmix train --resume {run_dir}`, or evaluate its newest checkpoint with --checkpoint"
        )
    binding = parameter_binding(config, trainer.env)
    return decode(path, saved_templates(trainer)[which], verified_parameter_bytes(path, binding))


def decode(path: Path, template: Any, data: bytes | None = None) -> Any:
    """A flax msgpack file read into `template`'s structure; a mismatch or non-finite values: one line."""
    try:
        tree = serialization.from_bytes(template, path.read_bytes() if data is None else data)
    except Exception as error:  # msgpack or structure mismatch: the file does not belong to this config
        first_line = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ConfigError(
            f"'{path}' does not hold parameters for the run's config.yaml ({first_line}); "
            "was it copied from another run?"
        ) from None
    if not all(np.isfinite(np.asarray(leaf)).all() for leaf in jax.tree.leaves(tree)):
        raise ConfigError(f"'{path}' holds non-finite parameters (NaN or infinite); it cannot be played")
    return tree


def checkpoint_state(run_dir: Path, trainer: Trainer, config: Config, at_most: int | None = None
                     ) -> tuple[Any, int]:
    """(the algorithm's state of every run, [S, ...] per leaf; its env step) from the newest complete
    checkpoint, or the newest at or before env step `at_most` (read only: the run may be training)."""
    store = CheckpointStore(run_dir, config.keep_checkpoints, create=False, read_only=True)
    try:
        restored = store.restore_latest(
            lambda: jax.eval_shape(trainer.init_runs, seed_keys(config.seed, config.num_seeds)),
            lambda: None,  # the replay is not needed
            config.to_dict(),
            at_most=at_most,
        )
    finally:
        store.close()
    for line in restored.skipped:
        print(f"qmix: warning: {line}", file=sys.stderr)
    return restored.runners.alg, restored.step


def checkpoint_saved(run_dir: Path, trainer: Trainer, config: Config, which: str = MAIN,
                     at_most: int | None = None) -> tuple[list[Any], int]:
    """Each run's tree `which`, as `saved_parameters` would write it, from a checkpoint; and its env step."""
    check_saved_name(trainer, which, run_dir)
    state, step = checkpoint_state(run_dir, trainer, config, at_most)
    algorithm = trainer.algorithm
    return [algorithm.saved_parameters(run_slice(state, k))[which] for k in range(config.num_seeds)], step


def saved_policies(run_dir: Path, trainer: Trainer, config: Config, which: str = MAIN, checkpoint: bool = False,
                   checkpoint_step: int | None = None) -> tuple[list[Any], str]:
    """Every run's greedy policy from its final tree `which` (or a checkpoint's), and where it came from:
    "final" or "checkpoint <env step>". Reads every file before anything is compiled."""
    if checkpoint or checkpoint_step is not None:
        trees, step = checkpoint_saved(run_dir, trainer, config, which, at_most=checkpoint_step)
        source = f"checkpoint {step}"
    else:
        trees = [load_final(folder, trainer, config, run_dir, which) for folder in seed_folders(run_dir, config)]
        source = "final"
    return [trainer.algorithm.policy_from_saved(which, tree) for tree in trees], source


class LoadedPolicy:
    """A trained policy that plays one environment step by step, carrying its own recurrent state.

    act(obs [N, O], avail [N, A] bool, key=None) -> actions [N] int32 (greedy policies ignore the key);
    reset() at the start of every episode.
    """

    def __init__(self, trainer: Trainer, policy: Any, source: str):
        self.trainer = trainer
        self.algorithm = trainer.algorithm
        self.policy = policy
        self.source = source
        self.spec = trainer.spec
        self._act = jax.jit(lambda state, key, obs, avail: self.algorithm.act(policy, state, key, obs[None],
                                                                              avail[None]))
        self._key = jax.random.PRNGKey(0)
        self.reset()

    def reset(self) -> None:
        self.state = self.algorithm.initial_actor_state(1)

    def act(self, obs: Any, avail: Any, key: jax.Array | None = None) -> np.ndarray:
        if key is None:
            self._key, key = jax.random.split(self._key)
        obs, avail = jnp.asarray(obs, jnp.float32), jnp.asarray(avail, bool)
        expected = ((self.spec.n_agents, self.spec.obs_dim), (self.spec.n_agents, self.spec.n_actions))
        if (obs.shape, avail.shape) != expected:
            raise ConfigError(f"act takes obs {expected[0]} and avail {expected[1]}, got {obs.shape} and {avail.shape}")
        self.state, actions = self._act(self.state, key, obs, avail)
        return np.asarray(actions[0])


def load_policy(run_dir: str | Path, seed: int | None = None, which: str = MAIN,
                checkpoint_step: int | None = None) -> LoadedPolicy:
    """The greedy policy of a finished run: seed `seed` of a --seeds K run (default its first), its saved
    tree `which` (default "params"), from the final parameters or the newest checkpoint at or before
    `checkpoint_step`. Errors are one-line ConfigErrors."""
    from qmix.run import load_run_config

    run_dir = Path(run_dir)
    config = load_run_config(run_dir)
    seeds = [config.seed + k for k in range(config.num_seeds)]
    seed = seeds[0] if seed is None else seed
    if seed not in seeds:
        raise ConfigError(f"'{run_dir}' trained seeds {', '.join(map(str, seeds))}; seed {seed} is not one of them")
    trainer = make_trainer(config)
    policies, source = saved_policies(run_dir, trainer, config, which, checkpoint_step=checkpoint_step)
    return LoadedPolicy(trainer, policies[seeds.index(seed)], source)
