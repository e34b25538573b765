"""Wall time and env steps until a run's test win rate first reaches given levels.

    python benchmarks/time_to_win_rate.py RUN_DIR [RUN_DIR ...] [--levels 0.8 0.95]

Reads each run's metrics.jsonl (a multi-seed folder counts each seed); `wall_seconds` includes compilation.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from qmix.results.metrics import read_metrics
from qmix.run_folder import metrics_logs


def first_reaching(records: list[dict], level: float) -> dict | None:
    return next((r for r in records if (r.get("test_win_rate") or 0.0) >= level), None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--levels", nargs="+", type=float, default=[0.8, 0.95])
    args = parser.parse_args()
    header = " | ".join(f"{level:.0%}: env steps | {level:.0%}: wall s" for level in args.levels)
    print(f"| run | {header} |")
    print("|---" * (1 + 2 * len(args.levels)) + "|")
    for folder in args.runs:
        for metrics in metrics_logs(folder):
            records = read_metrics(metrics)
            cells = []
            for level in args.levels:
                hit = first_reaching(records, level)
                cells += [f"{hit['env_steps']:,}", f"{hit['wall_seconds']:.0f}"] if hit else ["not reached", "-"]
            print(f"| {metrics.parent} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
