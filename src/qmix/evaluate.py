"""Greedy, decentralised evaluation of a finished run: the paper's test protocol at any number of episodes.

`qmix evaluate RUN_DIR` loads each run's final parameters, plays `episodes` greedy episodes (epsilon 0,
each agent acting on its own observations) and reports every metric the environment declares: on a map
with a win, the win rate with a 95% Wilson interval and how the other episodes ended (lost: every ally
dead; or cut by the time limit); the mean return, length and the environment's own measures, each with a
95% t interval over episodes; with several seeds also the mean of the headline over runs with a 95% t
interval. The result is written atomically to RUN_DIR/evaluation.json.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from functools import lru_cache, partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from qmix.build import make_trainer
from qmix.config import Config
from qmix.envs.base import EpisodeMetrics, episode_metrics
from qmix.envs.heuristic import wilson_interval
from qmix.errors import ConfigError
from qmix.files import write_atomic
from qmix.learn.rollout import run_episodes
from qmix.metric_text import format_value, is_rate, label
from qmix.policies import MAIN, saved_policies, saved_templates
from qmix.results.stats import mean_ci
from qmix.run import load_run_config
from qmix.run_folder import EVALUATION_FILE, seed_folders

RESULT_FILE = EVALUATION_FILE
AVERAGED_RESULT_FILE = "evaluation_averaged.json"  # `qmix evaluate --averaged`
AVERAGED = "averaged_agent"  # the saved tree --averaged plays (value decomposition with average_policy=true)
ROUND_EPISODES = 256  # episodes played side by side; more are played in rounds (bounded memory)


@dataclass
class SeedEvaluation:
    """One run's greedy episodes: the mean of every metric its environment declares, with a 95% interval;
    with a win also how the episodes ended (fractions of `episodes` that add up to 1)."""

    folder: str
    episodes: int
    metrics: dict[str, float]  # metric name -> its mean over the episodes (win_rate: the fraction won)
    intervals: dict[str, list[float]]  # metric name -> [low, high]: Wilson for a win rate, else a t interval
    mean_return: float
    mean_length: float
    win_rate: float | None = None  # the fields below only for an environment with a win
    win_ci_low: float | None = None
    win_ci_high: float | None = None
    lost: float | None = None  # ended without a win before the time limit (on SMAX: every ally dead)
    time_limit: float | None = None  # the episode reached the map's time limit


@dataclass
class RunEvaluation:
    """Every run's evaluation and the mean of the headline over runs; in JSON the mean is mean_<headline>
    (mean_win_rate on SMAX, mean_return on the two-step game) with its 95% t half-width, mean_<headline>_ci."""

    run_dir: str
    map: str
    alg: str
    episodes: int
    seed: int
    params: str  # "final" (params.msgpack) or "checkpoint <env step>", then " averaged" for --averaged
    runs: list[SeedEvaluation]
    headline: str  # the metric the environment is summarised by (win_rate, return, ...)
    mean: float  # the headline's mean over runs
    mean_ci: float | None  # half-width of the 95% t interval over runs; None for one run

    def to_dict(self) -> dict:
        data = asdict(self)
        data["runs"] = [{k: v for k, v in run.items() if v is not None} for run in data["runs"]]
        mean, ci = data.pop("mean"), data.pop("mean_ci")
        return {**data, f"mean_{self.headline}": mean, f"mean_{self.headline}_ci": ci}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    @property
    def file_name(self) -> str:
        """Where it is written in the run folder: one file per source, so none overwrites another."""
        if self.params == "final":
            return RESULT_FILE
        if self.params == "final averaged":
            return AVERAGED_RESULT_FILE
        return "evaluation_" + self.params.replace(" ", "_") + ".json"  # evaluation_checkpoint_400[_averaged]


@lru_cache(maxsize=8)
def _compiled_outcomes(trainer, n_episodes: int):
    """The compiled greedy rounds of `trainer`'s game, kept with the trainer (build.make_trainer keeps the
    last few), so evaluating its runs again compiles nothing."""
    return jax.jit(partial(_outcomes, trainer.algorithm, trainer.env, n_episodes=n_episodes))


def _outcomes(algorithm, env, policy, key, n_episodes):
    """[E] per-episode values of every declared metric, and whether the time limit ended the episode,
    of `n_episodes` greedy episodes (compiled once per run config)."""
    episodes, stats = run_episodes(algorithm, env, policy, key, n_episodes)
    return {**stats.metrics(), "time_limit": jnp.any(episodes.truncated, axis=1)}


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
    trainer = make_trainer(config)
    which = AVERAGED if averaged else MAIN
    if averaged and which not in saved_templates(trainer):
        raise ConfigError(
            f"'{run_dir}' kept no averaged agent network ({config.alg} with its settings saves "
            f"{', '.join(saved_templates(trainer))}); drop --averaged, or train with average_policy=true"
        )
    folders = seed_folders(run_dir, config)
    # every file is read before anything is compiled
    policies, source = saved_policies(run_dir, trainer, config, which, from_checkpoint, checkpoint_step)
    if averaged:
        source += " averaged"

    round_size = min(episodes, ROUND_EPISODES)
    rounds = -(-episodes // round_size)
    play = _compiled_outcomes(trainer, round_size)
    results = []
    for folder, policy in zip(folders, policies, strict=True):
        parts = [jax.device_get(play(policy, jax.random.fold_in(jax.random.PRNGKey(seed), r)))
                 for r in range(rounds)]
        outcome = {name: np.concatenate([p[name] for p in parts])[:episodes] for name in parts[0]}
        results.append(_summarise(folder, outcome, episodes, episode_metrics(trainer.env)))

    declared = episode_metrics(trainer.env)
    headlines = np.array([r.metrics[declared.headline] for r in results])
    _, half_width, _ = mean_ci(headlines)
    evaluation = RunEvaluation(
        run_dir=str(run_dir),
        map=config.map,
        alg=config.alg,
        episodes=episodes,
        seed=seed,
        params=source,
        runs=results,
        headline=declared.headline,
        mean=float(np.mean(headlines)),
        mean_ci=float(half_width) if len(results) > 1 else None,
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


def _interval(name: str, values: np.ndarray) -> list[float]:
    """95% interval of a metric's mean over episodes: Wilson for a win rate, t for anything else."""
    if is_rate(name):
        return list(wilson_interval(int(values.sum()), len(values)))
    mean, half_width, _ = mean_ci(values)
    return [float(mean - half_width), float(mean + half_width)]


def _summarise(folder: Path, outcome: dict[str, np.ndarray], episodes: int, declared: EpisodeMetrics
               ) -> SeedEvaluation:
    """outcome: [episodes] per-episode values of each declared metric, and "time_limit"."""
    metrics = {name: float(np.mean(outcome[name])) for name in declared.names}
    run = SeedEvaluation(folder=str(folder), episodes=episodes, metrics=metrics,
                         intervals={name: _interval(name, outcome[name]) for name in declared.names},
                         mean_return=metrics["return"], mean_length=metrics["length"])
    if not declared.has_win:
        return run
    won = outcome["win_rate"].astype(bool)
    time_limit = outcome["time_limit"].astype(bool) & ~won
    run.win_rate = metrics["win_rate"]
    run.win_ci_low, run.win_ci_high = run.intervals["win_rate"]
    run.lost = float((~won & ~time_limit).mean())
    run.time_limit = float(time_limit.mean())
    return run


def format_metric(name: str, value: float, interval: list[float]) -> str:
    """"win rate 73.0% [68.9%, 76.8%]" (Wilson) or "return 12.31 +- 0.42" (t interval: mean +- half width)."""
    return f"{label(name)} {format_with_interval(name, value, interval)}"


def format_with_interval(name: str, value: float, interval: list[float]) -> str:
    if is_rate(name):
        return f"{value:.1%} [{interval[0]:.1%}, {interval[1]:.1%}]"
    return f"{value:.2f} +- {(interval[1] - interval[0]) / 2:.2f}"


def format_evaluation(evaluation: RunEvaluation) -> list[str]:
    """Human-readable lines: one per run (the headline first, then how episodes ended where they can be won,
    then every other metric), then the mean of the headline over runs."""
    lines = [f"{evaluation.alg} on {evaluation.map}, {evaluation.params} parameters:"]
    headline = evaluation.headline
    for run in evaluation.runs:
        ended = f"; lost {run.lost:.1%}, time limit {run.time_limit:.1%}" if run.win_rate is not None else ""
        others = "".join(f"; {format_metric(name, value, run.intervals[name])}"
                         for name, value in run.metrics.items() if name != headline)
        lines.append(f"{run.folder}: {format_metric(headline, run.metrics[headline], run.intervals[headline])} "
                     f"over {run.episodes} greedy episodes{ended}{others}")
    if evaluation.mean_ci is not None:
        lines.append(
            f"mean over {len(evaluation.runs)} runs: {format_value(headline, evaluation.mean, 1)} "
            f"+- {format_value(headline, evaluation.mean_ci, 1)} (95% t interval)"
        )
    return lines
