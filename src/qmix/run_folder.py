"""The one owner of a run folder's layout: what `qmix train` writes where, and how it is found again.

RUN_DIR/
  config.yaml                 every resolved setting (and config_format)
  metrics.jsonl               one line per test point (one per seed folder with num_seeds > 1)
  tensorboard/                the same numbers for TensorBoard
  params.msgpack              the final parameters (and other files an algorithm keeps, e.g. averaged_agent)
  checkpoints/<env step>/     whole-state checkpoints for --resume
  seed_<s>/                   with num_seeds > 1: each run's config.yaml, metrics, tensorboard, parameters
  evaluation*.json            written by `qmix evaluate`
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import yaml

from qmix.files import write_atomic

CONFIG_FILE = "config.yaml"
METRICS_FILE = "metrics.jsonl"
TENSORBOARD_FOLDER = "tensorboard"
CHECKPOINT_FOLDER = "checkpoints"
PARAMS_FILE = "params.msgpack"  # a run's final parameters, in each seed folder
AVERAGED_AGENT_FILE = "averaged_agent.msgpack"  # the averaged agent network (average_policy=true)
EVALUATION_FILE = "evaluation.json"
INT32_MAX = 2**31 - 1


def parameter_file(name: str) -> str:
    """The file an algorithm's saved pytree `name` goes to ("params" -> params.msgpack)."""
    return f"{name}.msgpack"


def default_run_dir(config, root: Path = Path("runs")) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    tag = f"-{config.tag}" if config.tag else ""
    return root / f"{stamp}-{config.alg}-{config.map}{tag}"


def seed_folders(run_dir: Path, config) -> list[Path]:
    """One run: the run folder itself; many seeds: run_dir/seed_<seed>/ each."""
    if config.num_seeds == 1:
        return [Path(run_dir)]
    return [Path(run_dir) / f"seed_{config.seed + k}" for k in range(config.num_seeds)]


def write_configs(run_dir: Path, config) -> None:
    from qmix.config import config_to_yaml

    write_atomic(run_dir / CONFIG_FILE, config_to_yaml(config))
    for k, folder in enumerate(seed_folders(run_dir, config)):
        if folder != run_dir:
            seed_config = yaml.safe_load(config_to_yaml(config))
            write_atomic(folder / CONFIG_FILE, yaml.safe_dump({**seed_config, "seed": config.seed + k}, sort_keys=False))


def drop_records_after(path: Path, env_steps: int) -> None:
    """Keep only the log lines up to `env_steps` (those a checkpoint already covers); rewrite atomically."""
    if not path.is_file():
        return
    kept = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut short by a kill
        if record.get("env_steps", INT32_MAX) <= env_steps:
            kept.append(line + "\n")
    write_atomic(path, "".join(kept))
