"""The `qmix` command line.

Wrong input gets one clear line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from qmix import cli_games
from qmix.errors import NON_FINITE_EXIT_CODE, ConfigError, NonFiniteError
from qmix.stopping import StopRequested, record_stops_from_now, stop_recording

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="QMIX, its family and baselines for cooperative multi-agent RL on SMAX, MPE, LBF and RWARE: train, evaluate, "
    "render, plot, sweep, reproduce the paper.",
)

DEFAULT_PRESET = "default"
# The commands that compile JAX programs: they keep them in the persistent cache (qmix/compile_cache.py)
# The commands that train: a stop (SIGINT, SIGTERM) is recorded from their first moment and honoured at a safe point
TRAINING_COMMANDS = frozenset({"train", "sweep", "reproduce"})
COMPILING_COMMANDS = frozenset({"train", "two-step", "matrix-game", "evaluate", "render", "heuristic", "plot", "reproduce"})


def fail(message: str, code: int = 2) -> None:
    typer.echo(f"qmix: error: {message}", err=True)
    raise typer.Exit(code)


@app.command()
def train(
    overrides: Annotated[list[str] | None, typer.Argument(help="settings as key=value, e.g. lr=0.001")] = None,
    map: Annotated[str | None, typer.Option("--map", help="task (`qmix maps`), e.g. 3m, simple_spread")] = None,
    alg: Annotated[str | None, typer.Option("--alg", help="the algorithm (`qmix algs` lists them)")] = None,
    preset: Annotated[
        str | None, typer.Option(help="hyperparameter preset: default, pymarl, tuned, paper [default: default]")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="random seed (the first, with --seeds)")] = None,
    seeds: Annotated[int | None, typer.Option("--seeds", help="train K seeds side by side in one program")] = None,
    env_steps: Annotated[int | None, typer.Option("--env-steps", help="training budget in env steps")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="run folder (default runs/<time>-<alg>-<map>)")] = None,
    config_file: Annotated[Path | None, typer.Option("--config", help="YAML file of settings")] = None,
    force: Annotated[bool, typer.Option(help="overwrite an existing run folder")] = False,
    no_progress: Annotated[bool, typer.Option("--no-progress", help="no progress bar")] = False,
    resume: Annotated[
        Path | None,
        typer.Option("--resume", metavar="RUN_DIR", help="continue this run from its newest complete checkpoint "
                     "(its saved settings; --env-steps may raise the budget)"),
    ] = None,
) -> None:
    """Train an algorithm (`qmix algs`) on a task (`qmix maps`); with no arguments, QMIX on SMAX's 3m."""
    from qmix.config import build_config, parse_overrides

    if resume is not None:
        refused = {"--preset": preset is not None, "--config": config_file is not None, "--out": out is not None,
                   "--force": force}
        settings = {"map": map, "alg": alg, "seed": seed, "num_seeds": seeds, "env_steps": env_steps}
        summary = _resume_training(resume, overrides, settings, refused, progress=not no_progress)
        config = summary.config
    else:
        config = build_config(
            preset=preset or DEFAULT_PRESET,
            overrides=parse_overrides(overrides or []),
            config_file=config_file,
            map=map,
            alg=alg,
            seed=seed,
            num_seeds=seeds,
            env_steps=env_steps,
        )
        from qmix.run import train as run_training

        summary = run_training(config, out, force=force, progress=not no_progress)
    _write_learning_curve(summary.run_dir)
    from qmix.closing import closing_line, final_evaluation

    typer.echo(closing_line(summary, config, final_evaluation(summary, config)))


def _write_learning_curve(run_dir: Path) -> None:
    """learning_curve.png and .svg in a finished run's folder; a figure that fails is a warning, not an error."""
    try:
        from qmix.results.plots import write_learning_curve

        write_learning_curve(run_dir)
    except Exception as error:  # the run itself is finished and saved: never fail it for its figure
        reason = (str(error).splitlines() or [type(error).__name__])[0]
        typer.echo(f"qmix: warning: no learning curve written in {run_dir} ({reason})", err=True)


def _resume_training(run_dir: Path, overrides: list[str] | None, settings: dict, refused: dict[str, bool],
                     progress: bool):
    """`qmix train --resume RUN_DIR`: the run keeps its saved settings; only the budget may change."""
    for flag, given in refused.items():
        if given:
            fail(f"{flag} cannot be used with --resume: a resumed run keeps the settings in {run_dir}/config.yaml")
    changes = {key: value for key, value in settings.items() if value is not None}
    from qmix.config import parse_overrides

    changes.update(parse_overrides(overrides or []))
    from qmix.run import resume as resume_run

    return resume_run(run_dir, changes, progress=progress)


# The matrix games (cli_games.py): train seeds side by side, print joint values and greedy joint actions.
app.command("two-step")(cli_games.two_step)
app.command("matrix-game")(cli_games.matrix_game)


@app.command()
def evaluate(
    run_dir: Annotated[Path, typer.Argument(help="a run folder `qmix train` wrote (finished: it holds params.msgpack)")],
    episodes: Annotated[int, typer.Option(help="greedy test episodes per run")] = 512,
    seed: Annotated[int, typer.Option(help="random seed of the test games (the same seed, the same games)")] = 12345,
    checkpoint: Annotated[bool, typer.Option("--checkpoint", help="use the newest checkpoint's parameters "
                                             "(a run still training, or stopped early)")] = False,
    checkpoint_step: Annotated[int | None, typer.Option("--checkpoint-step", metavar="ENV_STEP",
                                                        help="use the newest kept checkpoint at or before "
                                                        "this env step")] = None,
    averaged: Annotated[bool, typer.Option("--averaged", help="play the averaged agent networks (runs trained "
                                           "with average_policy=true)")] = False,
) -> None:
    """Greedy metrics of a finished run's final parameters (the headline first), with 95% CIs; writes evaluation.json
    (evaluation_averaged.json with --averaged, evaluation_checkpoint_<step>.json from a checkpoint)."""
    from qmix.evaluate import evaluate_run, format_evaluation, save_evaluation

    result = evaluate_run(run_dir, episodes=episodes, seed=seed, from_checkpoint=checkpoint, averaged=averaged,
                          checkpoint_step=checkpoint_step, write=False)
    for line in format_evaluation(result):
        typer.echo(line)
    typer.echo(f"wrote {save_evaluation(run_dir, result)}")


@app.command()
def render(
    run_dir: Annotated[Path, typer.Argument(help="a finished run folder on a SMAX map")],
    out: Annotated[Path | None, typer.Option("--out", help="GIF to write [default: <run>/episode_seed<seed>.gif]")] = None,
    seed: Annotated[int, typer.Option(help="random seed of the episode")] = 0,
    run: Annotated[int, typer.Option("--run", help="which run of a --seeds K folder (0 to K-1)")] = 0,
) -> None:
    """Draw one greedy, decentralised episode of a finished run as an animated GIF."""
    from qmix.render import render_run

    episode = render_run(run_dir, out, seed=seed, run=run)
    outcome = "won" if episode.won else "not won"
    typer.echo(f"{outcome} in {episode.steps} steps, return {episode.episode_return:.2f}; "
               f"wrote {episode.path} ({episode.frames} frames)")


@app.command()
def heuristic(
    map: Annotated[str, typer.Option("--map", help="map name")] = "3m",
    episodes: Annotated[int, typer.Option(help="episodes to play")] = 200,
    seed: Annotated[int, typer.Option(help="random seed")] = 0,
) -> None:
    """The paper's heuristic baseline: attack the closest enemy until it dies; win rate with a 95% CI."""
    from qmix.envs import require_capability

    require_capability(map, "heuristic", f"the heuristic baseline cannot play '{map}'")
    if episodes < 1:
        fail("--episodes must be at least 1")
    from qmix.envs.heuristic import evaluate_heuristic

    result = evaluate_heuristic(map, episodes, seed)
    typer.echo(
        f"heuristic on {map}: win rate {result['win_rate']:.1%} "
        f"(95% CI {result['ci_low']:.1%} to {result['ci_high']:.1%}) over {result['episodes']} episodes, "
        f"mean return {result['mean_return']:.2f}"
    )


@app.command()
def plot(
    run_dirs: Annotated[list[Path], typer.Argument(help="run folders, or folders holding run folders")],
    out: Annotated[Path | None, typer.Option("--out", help="output path without extension [default: the metric's "
                                             "name]")] = None,
    metric: Annotated[str | None, typer.Option("--metric", metavar="NAME", help="the test metric to plot, e.g. "
                                               "test_return [default: the runs' headline, e.g. test_win_rate]")] = None,
    heuristic_maps: Annotated[bool, typer.Option("--heuristic/--no-heuristic", help="draw the heuristic's win rate")] = False,
) -> None:
    """A test metric against env steps: mean over runs with 95% CI bands, one panel per map; and a table."""
    from qmix.results.headline import metric_groups
    from qmix.results.plots import plot_runs
    from qmix.results.runs import load_runs
    from qmix.results.stats import aggregate_table, format_table_markdown

    for path in run_dirs:
        if not path.exists():
            fail(f"'{path}' does not exist")
    try:
        runs = load_runs(run_dirs)
    except ValueError as error:
        fail(str(error))
    groups = metric_groups(runs, metric)  # maps with and without a win: each its own figure
    lines = None
    if heuristic_maps:
        from qmix.envs import require_capability
        from qmix.envs.heuristic import evaluate_heuristic

        if list(groups) != ["test_win_rate"]:
            fail(f"--heuristic draws the heuristic's win rate, not {', '.join(groups)}; drop --heuristic or plot "
                 "test_win_rate")
        for map_name in sorted({r.map for r in runs}):
            require_capability(map_name, "heuristic", f"--heuristic cannot draw the heuristic on '{map_name}'")
        lines = {m: evaluate_heuristic(m, 200, 0)["win_rate"] for m in sorted({r.map for r in runs})}
    for metric, group in groups.items():
        stem = Path(f"{out}_{metric}") if out and len(groups) > 1 else out or Path(metric)
        paths = plot_runs(group, stem, heuristic=lines, metric=metric)
        typer.echo(format_table_markdown(aggregate_table(group, key=metric)))
        typer.echo("wrote " + ", ".join(str(p) for p in paths))


@app.command()
def reproduce(
    scale: Annotated[str, typer.Option(help="smoke (minutes), small (a few hours on 2 cores), medium (six maps, 1M "
                                       "steps), paper (full)")] = "small",
    maps: Annotated[list[str] | None, typer.Option(
        "--maps", help="train only these maps (repeat the option); the report covers all")] = None,
    out: Annotated[Path, typer.Option("--out", help="folder for runs, figures and report.md")] = Path(
        "reproduction"
    ),
    no_progress: Annotated[bool, typer.Option("--no-progress", help="no progress bars")] = False,
    report_only: Annotated[bool, typer.Option("--report-only", help="train nothing; report the runs present")] = False,
    address: Annotated[str | None, typer.Option("--address", help="run the tasks on this Ray cluster; "
                                                "default: Ray on this machine")] = None,
    cpus: Annotated[int | None, typer.Option("--cpus", help="local Ray: CPUs to use [default: all]")] = None,
    gpus: Annotated[int | None, typer.Option("--gpus", help="local Ray: GPUs to use [default: all found]")] = None,
    memory: Annotated[float | None, typer.Option("--memory", help="local Ray: GB of memory tasks may reserve")] = None,
    order: Annotated[str, typer.Option(help="qmix-first (QMIX on every map, then the rest) or plan")] = "qmix-first",
    max_running: Annotated[int | None, typer.Option("--max-running", help="at most this many tasks at once")] = None,
    seed_group: Annotated[int | None, typer.Option("--seed-group", help="at most this many seeds side by side in "
                                                   "one task [default: as many as fit in memory]")] = None,
    keep: Annotated[Path | None, typer.Option("--keep", help="a folder that lasts (e.g. in git): finished runs' "
                                              "summaries are copied there, and given back to an empty --out")] = None,
) -> None:
    """The paper's experiments: two-step game, IQL/VDN/QMIX on the maps, ablations; then report.md."""
    _ray_options(cpus, gpus, memory, max_running)
    if seed_group is not None and seed_group < 1:
        fail(f"--seed-group must be at least 1, got {seed_group}")
    from qmix.reproduce import ReproductionFailed
    from qmix.reproduce import reproduce as run_reproduction

    try:
        run_reproduction(scale, out, maps=maps, progress=not no_progress, report_only=report_only, address=address,
                         cpus=cpus, gpus=gpus, memory=int(memory * 1e9) if memory else None, order=order,
                         max_running=max_running, seed_group=seed_group, keep=keep)
    except ReproductionFailed as error:
        fail(str(error), code=1)


def _ray_options(cpus: int | None, gpus: int | None, memory: float | None, max_running: int | None) -> None:
    for name, value in (("--cpus", cpus), ("--gpus", gpus), ("--max-running", max_running)):
        if value is not None and value < (0 if name == "--gpus" else 1):
            fail(f"{name} must be at least {0 if name == '--gpus' else 1}, got {value}")
    if memory is not None and memory <= 0:
        fail(f"--memory must be a positive number of GB, got {memory}")


@app.command()
def sweep(
    spec: Annotated[Path, typer.Argument(help="sweep file (YAML): maps, algs, seeds, seed_group, settings, grid, out")],
    out: Annotated[Path | None, typer.Option("--out", help="storage folder for the run folders (wins over the "
                                             "file's out)")] = None,
    address: Annotated[str | None, typer.Option("--address", help="join this Ray cluster (e.g. 10.0.0.1:6379); "
                                                "default: start Ray on this machine")] = None,
    cpus: Annotated[int | None, typer.Option("--cpus", help="local Ray: CPUs to use [default: all]")] = None,
    gpus: Annotated[int | None, typer.Option("--gpus", help="local Ray: GPUs to use [default: all found]")] = None,
    memory: Annotated[float | None, typer.Option("--memory", help="local Ray: GB of memory tasks may reserve "
                                                 "[default: the machine's available memory]")] = None,
    max_running: Annotated[int | None, typer.Option("--max-running", help="at most this many tasks at once")] = None,
    no_progress: Annotated[bool, typer.Option("--no-progress", help="status lines instead of a live table")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="list the tasks and what they declare; train nothing")] = False,
    keep: Annotated[Path | None, typer.Option("--keep", help="a folder that lasts (e.g. in git): finished runs' "
                                              "small files and the summary, given back to an empty storage")] = None,
) -> None:
    """Train a grid of runs as Ray tasks (locally, or on a cluster with --address); finished runs are skipped."""
    _ray_options(cpus, gpus, memory, max_running)
    from qmix.sweep import run_sweep

    outcomes = run_sweep(spec, out, address=address, cpus=cpus, gpus=gpus,
                         memory=int(memory * 1e9) if memory else None, progress=not no_progress,
                         max_running=max_running, dry_run=dry_run, keep=keep)
    if any(o.status == "failed" for o in outcomes):
        raise typer.Exit(1)


@app.command()
def config(
    preset: Annotated[str, typer.Option(help="show this preset's resolved settings")] = DEFAULT_PRESET,
    alg: Annotated[str | None, typer.Option("--alg", help="the algorithm whose settings to show")] = None,
    map: Annotated[str | None, typer.Option("--map", help="the map whose settings to show")] = None,
    overrides: Annotated[list[str] | None, typer.Argument(help="settings as key=value")] = None,
) -> None:
    """List the settings that apply to an algorithm on a map, with their values and docs (YAML)."""
    from qmix.config import build_config, parse_overrides, preset_names
    from qmix.settings import describe

    resolved = build_config(preset=preset, alg=alg, map=map, overrides=parse_overrides(overrides or []))
    lines = [f"# preset '{preset}' (presets: {', '.join(preset_names())}), --alg {resolved.alg}, --map {resolved.map}"]
    for title, group in resolved.groups():
        described = [(n, v, d) for n, v, d in describe(group) if n not in ("algorithm", "environment")]
        lines.append(f"\n# --- {title} ({len(described)} settings) ---" if described else f"\n# --- {title}: none ---")
        for name, value, doc in described:
            lines.append(f"{name}: {_yaml_scalar(value)}  # {doc}")
    typer.echo("\n".join(lines))


def _yaml_scalar(value) -> str:
    import yaml

    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()


@app.command()
def maps() -> None:
    """List the maps by suite (the matrix games, SMAX with the paper's six first, MPE, LBF, RWARE), one line each."""
    from qmix.envs import ENVIRONMENTS

    typer.echo("\n".join(ENVIRONMENTS.describe(group_by="suite")))


@app.command()
def algs() -> None:
    """List the algorithms, one line each."""
    from qmix.algorithms import ALGORITHMS

    typer.echo("\n".join(ALGORITHMS.describe()))


def main() -> None:
    words = [w for w in sys.argv[1:] if not w.startswith("-")]
    if words and words[0] in TRAINING_COMMANDS and "--help" not in sys.argv:
        record_stops_from_now()  # before JAX and the environments are imported: a Ctrl-C there is not lost
    try:
        _main(words)
    finally:
        stop_recording()


def _main(words: list[str]) -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if words and words[0] in COMPILING_COMMANDS and "--help" not in sys.argv:
        from qmix.compile_cache import enable_compile_cache

        enable_compile_cache()
    try:
        code = app(standalone_mode=False)
        sys.exit(code or 0)
    except ConfigError as error:
        typer.echo(f"qmix: error: {error}", err=True)
        sys.exit(2)
    except StopRequested as stop:
        typer.echo(f"qmix: {stop}", err=True)
        sys.exit(stop.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        typer.echo("qmix: interrupted", err=True)
        sys.exit(130)
    except OSError as error:  # the file system said no (full, read-only, no permission) where we did not expect it
        where = f" '{error.filename}'" if error.filename else ""
        typer.echo(f"qmix: error: {error.strerror or error}{where}; free space or fix the permissions, then "
                   "retry (a run continues with --resume)", err=True)
        sys.exit(2)
    except Exception as error:
        stopped = _stopped_run_exit_code(error)
        if stopped is not None:
            typer.echo(f"qmix: error: {error}", err=True)
            sys.exit(stopped)
        if not _is_usage_error(error):
            raise
        context = getattr(error, "ctx", None)
        if type(error).__name__ == "NoArgsIsHelpError" and context is not None:
            typer.echo(context.get_help())
            sys.exit(0)
        command = f" (qmix {context.info_name})" if context is not None and context.info_name != "qmix" else ""
        typer.echo(f"qmix: error: {error.format_message()}{command}; see --help", err=True)
        sys.exit(2)


def _stopped_run_exit_code(error: Exception) -> int | None:
    """A run the NaN guard stopped: its exit code (3); None for any other error."""
    return NON_FINITE_EXIT_CODE if isinstance(error, NonFiniteError) else None


def _is_usage_error(error: Exception) -> bool:
    """The command-line parser's own errors (bad option, missing argument, bad value): exit code 2."""
    return hasattr(error, "format_message") and getattr(error, "exit_code", None) == 2


if __name__ == "__main__":
    main()
