"""What `qmix train` says when a run ends: the headline's last and best test values, and the headline of a
larger greedy evaluation of the final parameters (written to evaluation.json, as `qmix evaluate` does)."""

from __future__ import annotations

from qmix.evaluate import RunEvaluation, evaluate_run, format_with_interval
from qmix.metric_text import format_value, label


def final_evaluation(summary, config) -> RunEvaluation | None:
    """`config.final_evaluation_episodes` greedy episodes per run with its final parameters, written to the run
    folder; None when the setting is 0 or the environment is played from Python (backend=sc2)."""
    if config.final_evaluation_episodes < 1 or config.backend != "smax":
        return None
    return evaluate_run(summary.run_dir, episodes=config.final_evaluation_episodes, write=True)


def closing_line(summary, config, evaluation: RunEvaluation | None) -> str:
    rate = sum(summary.env_steps) / max(summary.wall_seconds, 1e-9)
    name = summary.headline
    finals = ", ".join(format_value(name, v) for v in summary.final_test_headline)
    bests = ", ".join(format_value(name, v) for v in summary.best_test_headline)
    return (f"done: {config.alg} on {config.map}, {config.num_seeds} run(s), {summary.env_steps[0]:,} env steps each "
            f"in {summary.wall_seconds:.0f} s ({rate:,.0f} env steps/s); final test {label(name)} {finals} "
            f"(best {bests}){evaluation_clause(evaluation)}; run folder {summary.run_dir}")


def evaluation_clause(evaluation: RunEvaluation | None) -> str:
    """"; greedy win rate 48.2% [44.0%, 52.5%] over 512 episodes" per run, and the mean over several runs."""
    if evaluation is None:
        return ""
    name = evaluation.headline
    runs = ", ".join(format_with_interval(name, r.metrics[name], r.intervals[name]) for r in evaluation.runs)
    mean = "" if evaluation.mean_ci is None else (
        f", mean {format_value(name, evaluation.mean, 1)} +- {format_value(name, evaluation.mean_ci, 1)}")
    return f"; greedy {label(name)} {runs} over {evaluation.episodes} episodes{mean} ({evaluation.file_name})"
