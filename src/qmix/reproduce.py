"""`qmix reproduce`: the paper's experiments in one command, with a report beside the paper's numbers.

Three parts (Rashid et al., 2018, sections 5 and 6): the two-step game (Table 1); the micromanagement comparison of IQL,
VDN and QMIX; the ablations (QMIX, QMIX-NS, QMIX-Lin, VDN-S). Each (map, algorithm) pair is one run folder
with all its seeds trained side by side; a pair whose folder is complete is reused, not rerun.
Several `qmix reproduce` processes with the same --out share the work: each pair is locked while it trains.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qmix.config import ConfigError, build_config
from qmix.run import PARAMS_FILE, resume, train, write_atomic

PAPER_MAPS = ["3m", "5m", "8m", "2s3z", "3s5z", "1c3s5z"]
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


SCALES = {
    "smoke": Scale(
        description="end-to-end check in minutes: tiny networks and budgets, results meaningless",
        seeds=2, env_steps=400, maps=["3m"], ablation_maps=["3m"], preset="default",
        two_step_episodes=200, two_step_seeds=2, heuristic_episodes=16,
        overrides=dict(num_envs=2, batch_size=4, buffer_size_episodes=16, test_episodes=4,
                       test_interval_env_steps=200, agent_hidden_dim=16, mixing_embed_dim=8,
                       hypernet_embed_dim=16, time_buckets=1),
    ),
    "small": Scale(
        description="a few hours on 2 CPU cores: 3 seeds, 200k env steps per run, tuned settings",
        seeds=3, env_steps=200_000, maps=["3m", "8m", "2s3z"], ablation_maps=["2s3z"], preset="default",
        two_step_episodes=5000, two_step_seeds=5, heuristic_episodes=500,
        overrides=dict(test_interval_env_steps=10_000, test_episodes=32),
    ),
    "paper": Scale(
        description="the paper's protocol: 20 runs per method, 2.05M env steps, tests of 20 episodes every "
        "100 training episodes; for bigger machines",
        seeds=20, env_steps=2_050_000, maps=PAPER_MAPS, ablation_maps=["2s3z", "3s5z"], preset="paper",
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


def run_is_complete(run_dir: Path, num_seeds: int, seed: int = 0) -> bool:
    """Finished runs end by writing their final parameters (one file per seed)."""
    if not (run_dir / "config.yaml").exists():
        return False
    import yaml

    config = yaml.safe_load((run_dir / "config.yaml").read_text()) or {}
    if config.get("num_seeds") != num_seeds:
        return False
    folders = [run_dir] if num_seeds == 1 else [run_dir / f"seed_{seed + k}" for k in range(num_seeds)]
    return all((f / PARAMS_FILE).exists() for f in folders)


@contextlib.contextmanager
def claim(run_dir: Path) -> Iterator[bool]:
    """Hold the pair's lock while it trains; yields False when another process holds it.

    An exclusive flock on a file beside the run folder: the system releases it when the holder ends,
    however it ends, so a killed process never leaves a stale claim.
    """
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    with open(run_dir.parent / f".{run_dir.name}.lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True


def run_pair(scale: Scale, map_name: str, alg: str, out: Path, progress: bool) -> Path:
    run_dir = out / "runs" / f"{map_name}-{alg}"
    config = build_config(
        preset=scale.preset,
        overrides=scale.overrides,
        map=map_name, alg=alg, num_seeds=scale.seeds, env_steps=scale.env_steps,
    )
    summary = None
    if (run_dir / "checkpoints").is_dir():
        try:
            print(f"resuming {alg} on {map_name} in {run_dir}")
            summary = resume(run_dir, {"env_steps": scale.env_steps}, progress=progress)
        except ConfigError as error:  # no usable checkpoint, or other settings: start again
            print(f"  cannot resume ({error}); starting again")
    if summary is None:
        print(f"training {alg} on {map_name}: {scale.seeds} seeds x {scale.env_steps:,} env steps -> {run_dir}")
        summary = train(config, run_dir, force=True, progress=progress)
    print(f"  done in {summary.wall_seconds:.0f} s; final test win rates "
          + ", ".join(f"{w:.0%}" for w in summary.final_test_win_rate))
    return run_dir


def two_step_results(scale: Scale, out: Path) -> dict:
    path = out / "two_step.json"
    if path.exists():
        return json.loads(path.read_text())
    from qmix.two_step import run_two_step

    results = {}
    for alg in ("qmix", "vdn"):
        runs = run_two_step(alg, seed=0, num_seeds=scale.two_step_seeds, episodes=scale.two_step_episodes)
        results[alg] = [{"seed": r.seed, "q_tot": r.q_tot.tolist(), "greedy_return": r.greedy_return} for r in runs]
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
    scale_name: str, out: Path, maps: list[str] | None = None, progress: bool = True, report_only: bool = False
) -> Path:
    """Run what is missing, then write the report; the report is rewritten after every finished run, so an
    interrupted reproduction still reports what it has. `report_only` trains nothing."""
    if scale_name not in SCALES:
        raise ConfigError(f"unknown scale '{scale_name}': choose one of {', '.join(SCALES)}")
    scale = SCALES[scale_name]
    for name in maps or []:
        build_config(preset=scale.preset, map=name)  # validates the map name with a clear error
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    pairs = plan(scale, maps)
    all_maps = sorted({m for m, _ in pairs}, key=lambda m: (m not in PAPER_MAPS, m))
    two_step = two_step_results(scale, out)
    heuristic = heuristic_results(scale, all_maps, out)
    from qmix.results.report import write_report


    def finished() -> list[Path]:
        folders = [out / "runs" / f"{m}-{a}" for m, a in pairs]
        return [f for f in folders if run_is_complete(f, scale.seeds)]

    report = write_report(out, scale_name, scale, pairs, two_step, heuristic, finished())
    if not report_only:
        for map_name, alg in pairs:
            run_dir = out / "runs" / f"{map_name}-{alg}"
            with claim(run_dir) as mine:
                if not mine:
                    print(f"skipping {run_dir}: another `qmix reproduce` is training it")
                    continue
                if run_is_complete(run_dir, scale.seeds):
                    print(f"reusing {run_dir}")
                    continue
                run_pair(scale, map_name, alg, out, progress)
            report = write_report(out, scale_name, scale, pairs, two_step, heuristic, finished())
    print(f"reproduction ({scale_name}) finished in {time.perf_counter() - start:.0f} s: {report}")
    return report
