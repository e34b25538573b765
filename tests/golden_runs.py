"""The golden runs: tiny trainings whose logs and final parameters are pinned in tests/golden/.

`python tests/golden_runs.py` rewrites the expected outputs; only do that for a change that is meant to
change results, and say so. test_golden.py trains the same runs and compares. They are pinned as the
default test set compiles (conftest.QUICK_XLA_FLAGS: XLA's cheapest CPU settings), so that the test trains
them beside the other tests; compiled at XLA's defaults, the same runs agree to float rounding.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
from flax import serialization
from jax.tree_util import keystr, tree_flatten_with_path

GOLDEN = Path(__file__).parent / "golden"
WALL_CLOCK = ("wall_seconds", "env_steps_per_second")  # the only fields that differ between two runs
TINY_SMAX = dict(
    map="3m", env_steps=600, num_envs=2, batch_size=4, buffer_size_episodes=16, test_episodes=4,
    test_interval_env_steps=200, agent_hidden_dim=16, mixing_embed_dim=8, hypernet_embed_dim=16,
    time_buckets=2, target_update_interval_episodes=6, updates_per_episode=0.75,
)
# name -> (preset, settings): GRU agents, TD(lambda) 0.6 and double Q (the default preset) on 3m with one
# and two seeds side by side; feed-forward agents and one-step targets on the two-step game.
CASES = {
    "smax_3m_one_seed": ("default", dict(TINY_SMAX, seed=0)),
    "smax_3m_two_seeds": ("default", dict(TINY_SMAX, seed=3, num_seeds=2)),
    "two_step": ("two_step", dict(env_steps=400, seed=1, num_seeds=2, test_interval_episodes=50,
                                  buffer_size_episodes=64)),
}


def run_case(name: str, out: Path) -> Path:
    from qmix.config import build_config
    from qmix.run import train

    preset, settings = CASES[name]
    train(build_config(preset=preset, **settings), out, progress=False, tensorboard=False)
    return out


def seed_dirs(run_dir: Path) -> list[Path]:
    seeds = sorted(run_dir.glob("seed_*"))
    return seeds or [run_dir]


def records(folder: Path) -> list[dict]:
    lines = (folder / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k not in WALL_CLOCK} for line in lines]


def parameters(folder: Path) -> dict[str, dict]:
    """The final parameters, leaf by leaf (keyed by its path in the saved tree): dtype, shape and three sums of
    the values in float64 (plain, absolute, squared), which move with any change of a value beyond float
    rounding, without keeping the parameters in git."""
    tree = serialization.msgpack_restore((folder / "params.msgpack").read_bytes())
    leaves, _ = tree_flatten_with_path(tree)
    summaries = {}
    for path, leaf in leaves:
        array = np.asarray(leaf)
        values = array.astype(np.float64)
        summaries[keystr(path)] = {
            "dtype": str(array.dtype), "shape": list(array.shape), "sum": float(values.sum()),
            "abs_sum": float(np.abs(values).sum()), "square_sum": float(np.square(values).sum()),
        }
    return summaries


def write_expected(name: str, run_dir: Path) -> None:
    for folder in seed_dirs(run_dir):
        target = GOLDEN / name / folder.relative_to(run_dir)
        target.mkdir(parents=True, exist_ok=True)
        (target / "metrics.json").write_text(json.dumps(records(folder), indent=0) + "\n")
        leaves = [f"{json.dumps(path)}: {json.dumps(summary)}" for path, summary in parameters(folder).items()]
        (target / "parameters.json").write_text("{\n" + ",\n".join(leaves) + "\n}\n")  # a leaf per line


def main(argv: list[str]) -> None:
    """`golden_runs.py [NAME ...]` rewrites the expected outputs; `--into DIR [NAME ...]` only trains the runs
    into DIR/NAME (test_golden.py compares them there)."""
    import tempfile

    from conftest import QUICK_XLA_FLAGS

    os.environ["XLA_FLAGS"] = QUICK_XLA_FLAGS  # before JAX starts its backend: XLA reads its flags once

    if argv[:1] == ["--into"]:
        into, names = Path(argv[1]), argv[2:] or list(CASES)
        for name in names:
            run_case(name, into / name)
        return
    names = argv or list(CASES)
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            write_expected(name, run_case(name, Path(tmp) / name))
            print(f"wrote {GOLDEN / name}")


if __name__ == "__main__":
    main(sys.argv[1:])
