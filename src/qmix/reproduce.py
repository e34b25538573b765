"""`qmix reproduce`: the paper's experiments in one command, with a report beside the paper's numbers.

Three parts (Rashid et al., 2018, sections 5 and 6): the two-step game (Table 1); the micromanagement comparison of IQL,
VDN and QMIX; the ablations (QMIX, QMIX-NS, QMIX-Lin, VDN-S). Each (map, algorithm) pair is one folder
`runs/<map>-<alg>/` of its seeds, trained as Ray tasks by the sweep machinery (qmix.sweep): seeds side by
side in one task when their replays fit in a node's memory, else in groups (`seed_<s>/`, `seeds_<a>-<b>/`).
Finished runs are skipped; a run whose worker dies resumes from its newest checkpoint; the report is
rewritten after every finished pair, so an interrupted reproduction still reports what it has.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qmix.config import Config, build_config, replace
from qmix.errors import ConfigError
from qmix.files import write_atomic
from qmix.paper import PAPER_MAPS

MAIN_ALGS = ["iql", "vdn", "qmix"]
ABLATION_ALGS = ["qmix", "qmix_ns", "qmix_lin", "vdn_s"]
HETEROGENEOUS = {"2s3z", "3s5z", "1c3s5z"}


@dataclass(frozen=True)
class Scale:
    description: str
    seeds: int
    env_steps: int
    maps: list[str]
    ablation_maps: list[str]
    preset: str
    two_step_episodes: int
    two_step_seeds: int
    heuristic_episodes: int
    overrides: dict[str, Any] = field(default_factory=dict)
    evaluate_episodes: int = 512  # greedy episodes on each run's final parameters, in its task (report table)


SCALES = {
    "smoke": Scale(
        description="end-to-end check in minutes: tiny networks and budgets, results meaningless",
        seeds=2, env_steps=400, maps=["3m"], ablation_maps=["3m"], preset="default",
        two_step_episodes=200, two_step_seeds=2, heuristic_episodes=16,
        overrides=dict(num_envs=2, batch_size=4, buffer_size_episodes=16, test_episodes=4,
                       test_interval_env_steps=200, agent_hidden_dim=16, mixing_embed_dim=8,
                       hypernet_embed_dim=16, time_buckets=1),
        evaluate_episodes=4,
    ),
    "small": Scale(
        description="a few hours on 2 CPU cores: 3 seeds, 200k env steps per run, tuned settings",
        seeds=3, env_steps=200_000, maps=["3m", "8m", "2s3z"], ablation_maps=["2s3z"], preset="default",
        two_step_episodes=5000, two_step_seeds=5, heuristic_episodes=500,
        overrides=dict(test_interval_env_steps=10_000, test_episodes=32),
    ),
    "medium": Scale(
        description="the six maps at 1M env steps, 3 seeds per method, tuned settings: days on 2 CPU cores, "
        "QMIX on every map first",
        seeds=3, env_steps=1_000_000, maps=list(PAPER_MAPS), ablation_maps=["2s3z", "3s5z"], preset="default",
        two_step_episodes=5000, two_step_seeds=5, heuristic_episodes=500,
        overrides=dict(test_interval_env_steps=10_000, test_episodes=32, checkpoint_interval_env_steps=100_000,
                       keep_checkpoints=1),
    ),
    "paper": Scale(
        description="the paper's protocol: 20 runs per method, 2.05M env steps, tests of 20 episodes every "
        "100 training episodes; for bigger machines",
        seeds=20, env_steps=2_050_000, maps=list(PAPER_MAPS), ablation_maps=["2s3z", "3s5z"], preset="paper",
        two_step_episodes=5000, two_step_seeds=20, heuristic_episodes=1000,
    ),
}


def plan(scale: Scale, maps: list[str] | None = None) -> list[tuple[str, str]]:
    """The (map, algorithm) runs of both comparisons, each once."""
    main_maps = maps or scale.maps
    ablation_maps = [m for m in scale.ablation_maps if m in main_maps] if maps else scale.ablation_maps
    pairs = [(m, a) for m in main_maps for a in MAIN_ALGS]
    pairs += [(m, a) for m in ablation_maps for a in ABLATION_ALGS if (m, a) not in pairs]
    return pairs


def report_plan(scale: Scale, maps: list[str] | None = None) -> list[tuple[str, str]]:
    """The pairs the report covers: the scale's whole plan, whichever maps this command trains (--maps
    limits the training only, so a report kept across machines never loses the pairs run elsewhere)."""
    extra = [m for m in maps or [] if m not in scale.maps]
    return plan(scale, scale.maps + extra)


ORDERS = ("qmix-first", "plan")


def ordered(pairs: list[tuple[str, str]], order: str) -> list[tuple[str, str]]:
    """qmix-first: QMIX on every map before any other method (the runs the report needs most)."""
    if order == "plan":
        return pairs
    return [p for p in pairs if p[1] == "qmix"] + [p for p in pairs if p[1] != "qmix"]


def pair_config(scale: Scale, map_name: str, alg: str):
    return build_config(preset=scale.preset, overrides=scale.overrides, map=map_name, alg=alg,
                        num_seeds=scale.seeds, env_steps=scale.env_steps)


def pair_tasks(scale: Scale, pairs, out: Path, memory_limit: int | None, cpus: float = 1.0, gpus: float = 0.0,
               seed_group: int | None = None):
    """The tasks of each pair: its finished run folders as they are (to be skipped), then its other seeds."""
    from qmix.sweep.plan import make_tasks, task_for

    tasks = []
    for map_name, alg in pairs:
        base, name = pair_config(scale, map_name, alg), f"{map_name}-{alg}"
        finished = finished_run_folders(out / "runs" / name, scale, map_name, alg)
        tasks += [task_for(out / "runs", str(folder.relative_to(out / "runs")), config, name, cpus, gpus,
                           evaluate_episodes=scale.evaluate_episodes) for folder, config in finished]
        done = {s for _, config in finished for s in _seeds(config)}
        remaining = [s for s in range(scale.seeds) if s not in done]
        if remaining:  # beside finished seed groups, the rest go in seed groups too
            tasks += make_tasks(out / "runs", base, name, remaining, seed_group, memory_limit, cpus, gpus,
                                subfolders=bool(finished), evaluate_episodes=scale.evaluate_episodes)
    return tasks


def _seeds(config) -> range:
    return range(config.seed, config.seed + config.num_seeds)


def finished_run_folders(pair_dir: Path, scale: Scale, map_name: str, alg: str) -> list[tuple[Path, Config]]:
    """The pair's finished run folders, each with its config: the pair folder itself (all seeds in one
    task) or its seed groups."""
    from qmix.sweep.state import RunState, inspect_run

    wanted = pair_config(scale, map_name, alg)
    if not pair_dir.is_dir():
        return []
    whole = pair_dir / "config.yaml"
    candidates = [pair_dir] if whole.is_file() else sorted(p for p in pair_dir.glob("seed*") if p.is_dir())
    finished = []
    for folder in candidates:
        if not (folder / "config.yaml").is_file():
            continue
        saved = build_config(config_file=folder / "config.yaml")
        group = replace(wanted, seed=saved.seed, num_seeds=saved.num_seeds)
        if inspect_run(folder, group).state is RunState.DONE:
            finished.append((folder, group))
    return finished


def pair_is_complete(pair_dir: Path, scale: Scale, map_name: str, alg: str) -> bool:
    """Every seed has finished in some run folder of the pair (one folder of all seeds, or seed groups)."""
    seeds = {s for _, config in finished_run_folders(pair_dir, scale, map_name, alg) for s in _seeds(config)}
    return seeds >= set(range(scale.seeds))


def two_step_results(scale: Scale, out: Path) -> dict:
    path = out / "two_step.json"
    if path.exists():
        return json.loads(path.read_text())
    from qmix.two_step import run_two_step

    results = {}
    for alg in ("qmix", "vdn"):
        runs = run_two_step(alg, seed=0, num_seeds=scale.two_step_seeds, episodes=scale.two_step_episodes)
        results[alg] = [{"seed": r.seed, "q_tot": None if r.q_tot is None else r.q_tot.tolist(), "greedy_return": r.greedy_return} for r in runs]
    write_atomic(path, json.dumps(results, indent=1))
    return results


def heuristic_results(scale: Scale, maps: list[str], out: Path) -> dict[str, dict]:
    path = out / "heuristic.json"
    results = json.loads(path.read_text()) if path.exists() else {}
    from qmix.envs.heuristic import evaluate_heuristic

    for name in maps:
        if name not in results or results[name]["episodes"] != scale.heuristic_episodes:
            results[name] = {k: float(v) for k, v in evaluate_heuristic(name, scale.heuristic_episodes, 0).items()}
            write_atomic(path, json.dumps(results, indent=1))
    return results


def reproduce(
    scale_name: str,
    out: Path,
    maps: list[str] | None = None,
    progress: bool = True,
    report_only: bool = False,
    address: str | None = None,
    cpus: int | None = None,
    gpus: int | None = None,
    memory: int | None = None,
    order: str = "qmix-first",
    max_running: int | None = None,
    seed_group: int | None = None,
    keep: Path | None = None,
) -> Path:
    """Run what is missing as Ray tasks, then write the report. `report_only` trains nothing. `keep`: a
    folder that lasts, given back to `out` first and holding every finished run's summary after each task."""
    if scale_name not in SCALES:
        raise ConfigError(f"unknown scale '{scale_name}': choose one of {', '.join(SCALES)}")
    if order not in ORDERS:
        raise ConfigError(f"unknown order '{order}': choose one of {', '.join(ORDERS)}")
    scale = SCALES[scale_name]
    for name in maps or []:
        build_config(preset=scale.preset, map=name)  # validates the map name with a clear error
    if keep is not None and keep.resolve() == out.resolve():
        raise ConfigError(f"--keep '{keep}' is the --out folder itself; keep summaries in another folder (one that lasts)")
    out.mkdir(parents=True, exist_ok=True)
    if keep is not None:
        from qmix.sweep.keep import restore_kept

        restored = restore_kept(keep, out)
        if restored:
            print(f"{len(restored)} finished run(s) given back from {keep}", flush=True)
    start = time.perf_counter()
    pairs, reported = plan(scale, maps), report_plan(scale, maps)
    trained_maps = sorted({m for m, _ in pairs}, key=lambda m: (m not in PAPER_MAPS, m))
    two_step = two_step_results(scale, out)
    heuristic = heuristic_results(scale, trained_maps, out)
    from qmix.results.report import write_report

    def finished() -> list[Path]:
        return [out / "runs" / f"{m}-{a}" for m, a in reported
                if pair_is_complete(out / "runs" / f"{m}-{a}", scale, m, a)]

    def keep_finished() -> None:
        if keep is not None:
            _keep_finished(scale, reported, out, keep)

    def write() -> Path:
        return write_report(out, scale_name, scale, reported, two_step, heuristic, finished())

    report = write()
    keep_finished()
    outcomes = []
    if not report_only:
        from qmix.sweep.execute import run_tasks, start_ray, stop_ray
        from qmix.sweep.progress import SweepDisplay
        from qmix.sweep.summary import outcome_lines

        cluster = start_ray(address, cpus, gpus, memory)
        try:
            tasks = pair_tasks(scale, ordered(pairs, order), out, cluster.largest_node_memory, seed_group=seed_group)
            print(f"reproduce ({scale_name}): {len(pairs)} method-map pairs, {len(tasks)} tasks on "
                  f"{cluster.nodes} node(s) ({cluster.address}, {cluster.cpus:g} CPUs); storage {out}", flush=True)

            def on_finished(outcome) -> None:
                nonlocal report
                if outcome.status == "done":
                    report = write()
                    keep_finished()

            outcomes = run_tasks(tasks, out / "runs", cluster, SweepDisplay(out / "runs", enabled=progress),
                                 on_finished=on_finished, max_running=max_running)
        finally:
            stop_ray()
        for line in outcome_lines(outcomes):
            print(line)
        report = write()
        keep_finished()
    print(f"reproduction ({scale_name}) finished in {time.perf_counter() - start:.0f} s: {report}")
    failed = [o for o in outcomes if o.status == "failed"]
    if failed:
        raise ReproductionFailed(f"{len(failed)} of {len(outcomes)} tasks failed: "
                                 + "; ".join(f"{o.task.name}: {o.detail}" for o in failed))
    return report


def _keep_finished(scale: Scale, pairs, out: Path, keep: Path) -> None:
    """Copy the report and every finished run folder's summary (a whole pair, or a seed group) to `keep`."""
    from qmix.sweep.keep import keep_storage

    done = [run for m, a in pairs for run in finished_run_folders(out / "runs" / f"{m}-{a}", scale, m, a)]
    keep_storage(out, keep, done)


class ReproductionFailed(RuntimeError):
    """Some runs failed (each named with its error); the others finished and are in the report."""
