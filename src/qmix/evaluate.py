"""Greedy, decentralised evaluation of a finished run: the paper's test protocol at any number of episodes.

`qmix evaluate RUN_DIR` loads each run's final parameters, plays `episodes` greedy episodes (epsilon 0,
each agent acting on its own observations) and reports the win rate with a 95% Wilson interval, how the
other episodes ended (lost: every ally dead; or cut by the time limit), the mean return and length; with several seeds
also the mean over runs with a 95% t interval. The result is written atomically to RUN_DIR/evaluation.json.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import serialization

from qmix.checkpoint import CheckpointStore, write_atomic
from qmix.config import Config
from qmix.envs.heuristic import wilson_interval
from qmix.errors import ConfigError
from qmix.learn.loop import Trainer, run_slice, seed_keys
from qmix.learn.rollout import run_episodes
from qmix.results.stats import mean_ci
from qmix.run import load_run_config
from qmix.run_folder import (
    AVERAGED_AGENT_FILE,
    EVALUATION_FILE,
    KEPT_FILE,
    PARAMS_FILE,
    seed_folders,
    verified_parameter_bytes,
)

RESULT_FILE = EVALUATION_FILE
AVERAGED_RESULT_FILE = "evaluation_averaged.json"  # `qmix evaluate --averaged`
ROUND_EPISODES = 256  # episodes played side by side; more are played in rounds (bounded memory)


@dataclass
class SeedEvaluation:
    """One run's greedy episodes; the rates are fractions of `episodes` and add up to 1."""

    folder: str
    episodes: int
    win_rate: float
    win_ci_low: float
    win_ci_high: float
    lost: float  # ended without a win before the time limit (on SMAX: every ally dead)
    time_limit: float  # the episode reached the map's time limit
    mean_return: float
    mean_length: float


@dataclass
class RunEvaluation:
    run_dir: str
    map: str
    alg: str
    episodes: int
    seed: int
    params: str  # "final" (params.msgpack) or "checkpoint <env step>", then " averaged" for --averaged
    runs: list[SeedEvaluation]
    mean_win_rate: float
    mean_win_rate_ci: float | None  # half-width of the 95% t interval over runs; None for one run

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"

    @property
    def file_name(self) -> str:
        """Where it is written in the run folder: one file per source, so none overwrites another."""
        if self.params == "final":
            return RESULT_FILE
        if self.params == "final averaged":
            return AVERAGED_RESULT_FILE
        return "evaluation_" + self.params.replace(" ", "_") + ".json"  # evaluation_checkpoint_400[_averaged]


def _outcomes(algorithm, env, policy, key, n_episodes):
    """[E] per-episode outcomes of `n_episodes` greedy episodes (compiled once per run config)."""
    episodes, stats = run_episodes(algorithm, env, policy, key, n_episodes)
    return dict(
        won=stats.won,
        time_limit=jnp.any(episodes.truncated, axis=1),
        returns=stats.returns,
        lengths=stats.lengths,
    )


def load_final_params(folder: Path, trainer: Trainer, run_dir: Path):
    """The final parameters `qmix train` wrote in `folder` (of `run_dir`), or a one-line ConfigError why not."""
    template = _saved_templates(trainer)["params"]
    return _read_params(folder / PARAMS_FILE, template, run_dir)


def _saved_templates(trainer: Trainer) -> dict:
    """The structure of every file the algorithm saves at the end of a run (nothing is computed)."""
    state = jax.eval_shape(trainer.algorithm.init, jax.random.PRNGKey(0))
    return jax.tree.map(lambda x: np.zeros(x.shape, x.dtype), trainer.algorithm.saved_parameters(state))


def load_final_averaged_agent(folder: Path, trainer: Trainer, run_dir: Path):
    """The averaged agent network (average_policy=true) `qmix train` wrote in `folder`."""
    template = _saved_templates(trainer)["averaged_agent"]
    return _read_params(folder / AVERAGED_AGENT_FILE, template, run_dir)


def load_agent_file(path: Path, trainer: Trainer):
    """An agent network saved as flax msgpack (e.g. a snapshot taken during training), or a one-line
    ConfigError why not."""
    if not path.is_file():
        raise ConfigError(f"agent-network file '{path}' does not exist")
    return _decode(path, _saved_templates(trainer)["params"].agent)


def _read_params(path: Path, template, run_dir: Path):
    if not path.is_file() and any((folder / KEPT_FILE).is_file() for folder in (path.parent, path.parent.parent)):
        raise ConfigError(f"'{path.parent}' is a kept summary of a finished run: its parameters were left out "
                          f"({KEPT_FILE} says so); evaluate the run folder it was copied from")
    if not path.is_file():
        raise ConfigError(
            f"no final parameters in '{path.parent}' ({path.name} is written when training ends); "
            f"finish the run with `qmix train --resume {run_dir}`, "
            "or evaluate its newest checkpoint with --checkpoint"
        )
    return _decode(path, template, verified_parameter_bytes(path))


def _decode(path: Path, template, data: bytes | None = None):
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


def checkpoint_agents(
    run_dir: Path, config: Config, trainer: Trainer, averaged: bool = False, at_most: int | None = None
) -> tuple[list, int]:
    """Each run's agent network (online, or averaged) from the run's newest complete checkpoint, or the
    newest at or before env step `at_most` (read only: the run may be training)."""
    alg_state, step = checkpoint_learner(run_dir, config, trainer, at_most)
    stacked = alg_state.average_agent if averaged else alg_state.params.agent  # [S, ...] per leaf
    return [run_slice(stacked, k) for k in range(config.num_seeds)], step


def checkpoint_learner(run_dir: Path, config: Config, trainer: Trainer, at_most: int | None = None):
    """(the algorithm's state of every run, [S, ...] per leaf; its env step) from the newest complete checkpoint,
    or the newest at or before env step `at_most`."""
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


def evaluate_run(
    run_dir: Path, episodes: int = 512, seed: int = 12345, write: bool = True, from_checkpoint: bool = False,
    averaged: bool = False, checkpoint_step: int | None = None,
) -> RunEvaluation:
    """Play `episodes` greedy episodes with every run's final parameters (or those of the newest checkpoint,
    for a run still training or stopped early; `checkpoint_step`: the newest at or before that env step);
    the same seed gives the same games. `averaged` plays the averaged agent networks of a run trained with
    average_policy=true instead of the online ones."""
    run_dir = Path(run_dir)
    if episodes < 1:
        raise ConfigError(f"--episodes must be at least 1, got {episodes}")
    config: Config = load_run_config(run_dir)
    if config.backend != "smax":
        raise ConfigError(
            f"`qmix evaluate` plays SMAX maps and the two-step game; '{run_dir}' trained with backend="
            f"{config.backend} (its test win rates are in metrics.jsonl)"
        )
    if averaged and not getattr(config.algorithm, "average_policy", False):
        raise ConfigError(
            f"'{run_dir}' kept no averaged agent network (average_policy is false in its config.yaml); "
            "drop --averaged, or train with average_policy=true"
        )
    folders = seed_folders(run_dir, config)
    trainer = Trainer(config)
    if from_checkpoint or checkpoint_step is not None:
        agents, step = checkpoint_agents(run_dir, config, trainer, averaged, at_most=checkpoint_step)
        source = f"checkpoint {step}"
    else:
        load = load_final_averaged_agent if averaged else (lambda *a: load_final_params(*a).agent)
        agents = [load(folder, trainer, run_dir) for folder in folders]  # fail before any compiling
        source = "final"
    if averaged:
        source += " averaged"

    round_size = min(episodes, ROUND_EPISODES)
    rounds = -(-episodes // round_size)
    play = jax.jit(partial(_outcomes, trainer.algorithm, trainer.env, n_episodes=round_size))
    results = []
    for folder, agent_params in zip(folders, agents, strict=True):
        policy = trainer.algorithm.greedy(agent_params)
        parts = [jax.device_get(play(policy, jax.random.fold_in(jax.random.PRNGKey(seed), r)))
                 for r in range(rounds)]
        outcome = {name: np.concatenate([p[name] for p in parts])[:episodes] for name in parts[0]}
        results.append(_summarise(folder, outcome, episodes))

    win_rates = np.array([r.win_rate for r in results])
    _, half_width, _ = mean_ci(win_rates)
    evaluation = RunEvaluation(
        run_dir=str(run_dir),
        map=config.map,
        alg=config.alg,
        episodes=episodes,
        seed=seed,
        params=source,
        runs=results,
        mean_win_rate=float(np.mean(win_rates)),
        mean_win_rate_ci=float(half_width) if len(results) > 1 else None,
    )
    if write:
        save_evaluation(run_dir, evaluation)
    return evaluation


def save_evaluation(run_dir: Path, evaluation: RunEvaluation) -> Path:
    """Write the evaluation beside the run; a read-only folder gets a one-line error (after the results)."""
    path = Path(run_dir) / evaluation.file_name
    try:
        write_atomic(path, evaluation.to_json())
    except OSError as error:
        raise ConfigError(f"could not write '{path}' ({error.strerror}); the results are above") from None
    return path


def _summarise(folder: Path, outcome: dict[str, np.ndarray], episodes: int) -> SeedEvaluation:
    won = outcome["won"].astype(bool)
    time_limit = outcome["time_limit"].astype(bool) & ~won
    wins = int(won.sum())
    low, high = wilson_interval(wins, episodes)
    return SeedEvaluation(
        folder=str(folder),
        episodes=episodes,
        win_rate=wins / episodes,
        win_ci_low=low,
        win_ci_high=high,
        lost=float((~won & ~time_limit).mean()),
        time_limit=float(time_limit.mean()),
        mean_return=float(outcome["returns"].mean()),
        mean_length=float(outcome["lengths"].mean()),
    )


def format_evaluation(evaluation: RunEvaluation) -> list[str]:
    """Human-readable lines: one per run, then the mean over runs."""
    lines = [f"{evaluation.alg} on {evaluation.map}, {evaluation.params} parameters:"]
    for run in evaluation.runs:
        lines.append(
            f"{run.folder}: win rate {run.win_rate:.1%} [{run.win_ci_low:.1%}, {run.win_ci_high:.1%}] over "
            f"{run.episodes} greedy episodes; lost {run.lost:.1%}, time limit {run.time_limit:.1%}; mean return {run.mean_return:.2f}, mean length {run.mean_length:.1f}"
        )
    if evaluation.mean_win_rate_ci is not None:
        lines.append(
            f"mean over {len(evaluation.runs)} runs: {evaluation.mean_win_rate:.1%} "
            f"+- {evaluation.mean_win_rate_ci:.1%} (95% t interval)"
        )
    return lines
