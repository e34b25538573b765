"""How much memory a task needs: an estimate of its replay buffers, from the environment's dimensions.

The replay holds `buffer_size_episodes` whole episodes per seed, each padded to the episode limit:
observations, state and available actions for T+1 slots, actions, reward and three flags for T steps.
The estimate is what the scheduler reserves for a task (Ray's `memory` resource), so that tasks whose
replays do not fit side by side on a node are not started side by side.
"""

from __future__ import annotations

import dataclasses
import functools

import qmix.memory as qmix_memory
from qmix.config import Config

# Peak resident size of one training process, measured (docs/sweeps.md): 1.95 GB on 3m (2.83 GB with 3
# seeds; 3.11 GB for 3 seeds in a Ray worker over 1M env steps), 3.55 GB on 2s3z, 6.81 GB on 8m, against
# replay estimates of 0.39 GB per seed, 1.97 and 4.79 GB: about 1.15 x the replay (copies while episodes
# are written and batches sampled) plus 1.3-1.8 GB per process (the JAX runtime, compiled programs,
# environments, networks).
REPLAY_FACTOR = 1.2
PROCESS_OVERHEAD_BYTES = 1_800_000_000


def replay_bytes(config: Config) -> int:
    """The replay buffers of every seed of one run (all seeds of a run are one process)."""
    return qmix_memory.replay_bytes(config, _example_item(dataclasses.replace(config, seed=0, num_seeds=1)))


@functools.cache
def _example_item(config: Config):
    """One stored episode of the run's algorithm on its environment (built once per map and settings)."""
    from qmix.algorithms import make_algorithm
    from qmix.envs import make_env
    from qmix.episodes import EnvSpec

    return make_algorithm(config, EnvSpec.of(make_env(config))).example_item()


def task_memory_bytes(config: Config) -> int:
    """What a task declares to the scheduler: its replays, their transient copies, one process's overhead."""
    return int(REPLAY_FACTOR * replay_bytes(config)) + PROCESS_OVERHEAD_BYTES


def format_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit in ("B", "KB") else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"
