"""How much memory a run's replay takes, and how much the machine has: checked before allocating."""

from __future__ import annotations

from pathlib import Path

import jax

GIB = 2**30


def item_bytes(example_item) -> int:
    """Bytes of one stored item (a whole padded episode)."""
    return sum(leaf.size * leaf.dtype.itemsize for leaf in jax.tree.leaves(example_item))


def replay_bytes(config, example_item) -> int:
    """The replay of every seed of a run: buffer_size_episodes items per seed (none for an on-policy
    algorithm, which allocates no replay)."""
    from qmix.algorithms import ALGORITHMS
    from qmix.algorithms.base import uses_replay

    if not uses_replay(ALGORITHMS.entry(config.alg)):
        return 0
    return item_bytes(example_item) * config.buffer_size_episodes * config.num_seeds


def address_space_left() -> int | None:
    """Room left under the process's address-space limit (`ulimit -v`, RLIMIT_AS), None where there is none:
    an allocation past it fails however much memory the machine has."""
    import resource

    limit, _ = resource.getrlimit(resource.RLIMIT_AS)
    if limit == resource.RLIM_INFINITY:
        return None
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmSize:"):
                return limit - int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return limit


def available_bytes() -> int | None:
    """Memory this process may still use: the smallest of the system's available memory, the room left under
    a cgroup limit (a container's or a job's) and under the address-space limit; None where none can be read."""
    candidates = [room for room in (address_space_left(),) if room is not None]
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                candidates.append(int(line.split()[1]) * 1024)
    except OSError:
        pass
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        used = int(Path("/sys/fs/cgroup/memory.current").read_text().strip())
        if limit != "max":
            candidates.append(int(limit) - used)
    except (OSError, ValueError):
        pass
    return min(candidates) if candidates else None


def check_replay_fits(config, example_item) -> None:
    """A one-line ConfigError when the replay cannot fit in the memory left, before anything is allocated."""
    from qmix.errors import ConfigError

    needed = replay_bytes(config, example_item)
    available = available_bytes()
    if available is None or needed <= available:
        return
    per_episode = item_bytes(example_item)
    fitting = max(int(0.8 * available // (per_episode * config.num_seeds)), 0)
    raise ConfigError(
        f"the replay needs about {needed / GIB:.1f} GiB ({config.buffer_size_episodes:,} episodes x "
        f"{per_episode / 2**20:.2f} MiB x {config.num_seeds} seed(s) on {config.map}) but only "
        f"{available / GIB:.1f} GiB of memory is available; lower buffer_size_episodes (to about {fitting:,}) "
        "or num_seeds"
    )
