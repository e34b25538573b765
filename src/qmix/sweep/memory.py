"""How much memory a task needs: an estimate of its replay buffers, from the environment's dimensions.

The replay holds `buffer_size_episodes` whole episodes per seed, each padded to the episode limit:
observations, state and available actions for T+1 slots, actions, reward and three flags for T steps.
The estimate is what the scheduler reserves for a task (Ray's `memory` resource), so that tasks whose
replays do not fit side by side on a node are not started side by side.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from dataclasses import dataclass

from qmix.config import Config

FLOAT32 = 4
INT32 = 4
BOOL = 1
# Peak resident size of one training process, measured (docs/sweeps.md): 1.95 GB on 3m (2.83 GB with 3
# seeds; 3.11 GB for 3 seeds in a Ray worker over 1M env steps), 3.55 GB on 2s3z, 6.81 GB on 8m, against
# replay estimates of 0.39 GB per seed, 1.97 and 4.79 GB: about 1.15 x the replay (copies while episodes
# are written and batches sampled) plus 1.3-1.8 GB per process (the JAX runtime, compiled programs,
# environments, networks).
REPLAY_FACTOR = 1.2
PROCESS_OVERHEAD_BYTES = 1_800_000_000


@dataclass(frozen=True)
class EnvDims:
    n_agents: int
    n_actions: int
    obs_dim: int
    state_dim: int
    episode_limit: int


def env_dims(config: Config) -> EnvDims:
    """The dimensions the replay is laid out by, read from the environment itself."""
    # Only the environment's settings matter: one environment is built per map, not per seed or setting.
    return _env_dims(dataclasses.replace(config, seed=0, num_seeds=1))


@functools.cache
def _env_dims(config: Config) -> EnvDims:
    from qmix.envs import make_env

    # make_env(config) where it takes the config, make_env(name, reward=..., ...) where it takes a map name
    if next(iter(inspect.signature(make_env).parameters)) == "config":
        env = make_env(config)
    else:
        env = make_env(config.map, reward=config.reward, episode_limit=config.episode_limit, backend=config.backend)
    return EnvDims(env.n_agents, env.n_actions, env.obs_dim, env.state_dim, env.episode_limit)


def episode_bytes(dims: EnvDims) -> int:
    """One stored episode: float32 observations and state, bool availability, int32 actions, flags."""
    slots, steps, n = dims.episode_limit + 1, dims.episode_limit, dims.n_agents
    per_slot = n * dims.obs_dim * FLOAT32 + dims.state_dim * FLOAT32 + n * dims.n_actions * BOOL
    per_step = n * INT32 + FLOAT32 + 3 * BOOL  # actions, reward, terminated / truncated / filled
    return slots * per_slot + steps * per_step


def replay_bytes(config: Config) -> int:
    """The replay buffers of every seed of one run (all seeds of a run are one process)."""
    dims = env_dims(config)
    return config.buffer_size_episodes * episode_bytes(dims) * config.num_seeds


def task_memory_bytes(config: Config) -> int:
    """What a task declares to the scheduler: its replays, their transient copies, one process's overhead."""
    return int(REPLAY_FACTOR * replay_bytes(config)) + PROCESS_OVERHEAD_BYTES


def format_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit in ("B", "KB") else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"
