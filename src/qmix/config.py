"""A run's settings: the loop's own, its algorithm's and its environment's; presets, files and overrides.

Each owner declares its settings (a frozen dataclass, every field with a one-line doc): the run loop here,
each algorithm beside its code, each environment beside its adapter. On the command line and in files
they share one flat namespace (`lr=0.001 td_lambda=0.6 reward=smac`), and a run's config.yaml is one
flat mapping of every setting that applies to it. Intervals and schedules name their unit.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

import qmix.settings as s
from qmix.errors import ConfigError
from qmix.registry import did_you_mean
from qmix.settings import setting

BACKENDS = ("smax", "sc2")  # SMAX in JAX (compiled), or real StarCraft II through SMAC (docs/sc2.md)
CONFIG_FORMAT = 2  # config.yaml written by this version; earlier ones name settings that no longer exist
INT32_MAX = 2**31 - 1  # the compiled loop counts env steps and episodes in int32
SEED_LIMIT = 2**32  # PRNG keys take 32-bit seeds


# The run's settings that only the host-side session reads (when to stop, test and checkpoint; which seeds and
# how many side by side, since seeds are inputs of the compiled programs): no compiled program depends on
# them, so runs that differ in these alone share one trainer (build.make_trainer).
SESSION_ONLY_SETTINGS = ("seed", "num_seeds", "env_steps", "test_interval_env_steps", "test_interval_episodes",
                         "final_evaluation_episodes", "checkpoint_interval_env_steps", "keep_checkpoints",
                         "save_replay", "tag")


@dataclass(frozen=True)
class RunSettings:
    """What to train on, and how the loop collects, stores, tests and checkpoints."""

    map: str = setting("3m", "a registered map (`qmix maps`: SMAX, MPE, the matrix games); with backend=sc2 a SMAC map name")
    backend: str = setting("smax", "smax (JAX, compiled) or sc2 (real StarCraft II through SMAC)", BACKENDS)
    alg: str = setting("qmix", "the algorithm (`qmix algs` lists them)")
    seed: int = setting(0, "random seed (the first, with num_seeds > 1)")
    num_seeds: int = setting(1, "independent runs trained side by side in one compiled program")

    num_envs: int = setting(1, "environments run side by side; each plays one whole episode per iteration (or "
                                  "steps on for rollout_steps, with PQN)")
    updates_per_episode: float = setting(1.0, "learner updates per collected episode (fractions carry over)")
    buffer_size_episodes: int = setting(5000, "replay capacity in whole episodes")
    batch_size: int = setting(32, "episodes per learner update")

    env_steps: int = setting(2_050_000, "training budget in environment steps")
    test_interval_env_steps: int = setting(10_000, "test every this many env steps (0: by episodes only)")
    test_interval_episodes: int = setting(0, "test every this many training episodes (0: by env steps only)")
    test_episodes: int = setting(32, "greedy decentralised episodes per test")
    final_evaluation_episodes: int = setting(512, "greedy episodes `qmix train` plays with the final parameters "
                                                  "for its closing line and evaluation.json (0: none)")

    checkpoint_interval_env_steps: int = setting(100_000, "whole-state checkpoint interval (0: only at the end)")
    keep_checkpoints: int = setting(2, "how many of the newest checkpoints to keep")
    save_replay: bool = setting(False, "also save the replay buffer in checkpoints (exact resume)")
    tag: str = setting("", "free-form label added to the run folder's name")

    def validate(self, uses_replay: bool = True) -> None:
        """`uses_replay`: the algorithm learns from a replay (the replay's settings are checked only then)."""
        s.check_choices(self)
        for key in ("num_envs", "batch_size", "buffer_size_episodes", "test_episodes", "num_seeds", "env_steps",
                    "keep_checkpoints"):
            s.check(getattr(self, key) >= 1, f"{key} must be at least 1, got {getattr(self, key)}")
        for key in ("test_interval_env_steps", "test_interval_episodes", "checkpoint_interval_env_steps",
                    "final_evaluation_episodes"):
            s.check(getattr(self, key) >= 0, f"{key} must not be negative, got {getattr(self, key)}")
        s.check(self.seed >= 0 and self.seed + self.num_seeds <= SEED_LIMIT,
                f"seed must be in [0, {SEED_LIMIT - self.num_seeds}] (32-bit random keys), got {self.seed}")
        s.check(self.env_steps < INT32_MAX - 100_000,
                f"env_steps must be below {INT32_MAX - 100_000:,} (the loop counts in int32), got {self.env_steps:,}")
        s.check(self.updates_per_episode >= 0,
                f"updates_per_episode must not be negative, got {self.updates_per_episode}")
        s.check(self.updates_per_episode < float("inf"), "updates_per_episode must be finite")
        if uses_replay:
            self._validate_replay()
        s.check(self.test_interval_env_steps > 0 or self.test_interval_episodes > 0,
                "set test_interval_env_steps or test_interval_episodes above 0")

    def _validate_replay(self) -> None:
        s.check(self.batch_size <= self.buffer_size_episodes,
                f"batch_size ({self.batch_size}) is larger than the replay (buffer_size_episodes="
                f"{self.buffer_size_episodes}); lower batch_size or raise buffer_size_episodes")
        s.check(self.num_envs <= self.buffer_size_episodes,
                f"num_envs ({self.num_envs}) is larger than the replay (buffer_size_episodes="
                f"{self.buffer_size_episodes}); each iteration stores num_envs episodes")


@dataclass(frozen=True)
class Config(RunSettings):
    """The run's settings, with its algorithm's (`algorithm`) and its environment's (`environment`)."""

    algorithm: Any = None
    environment: Any = None

    def to_dict(self) -> dict[str, Any]:
        """Every setting that applies, flat: the run's, then the algorithm's, then the environment's."""
        flat = {f.name: getattr(self, f.name) for f in dataclasses.fields(RunSettings)}
        for group in (self.algorithm, self.environment):
            flat.update(dataclasses.asdict(group))
        return flat

    def groups(self) -> list[tuple[str, Any]]:
        return [("run", self), (f"algorithm {self.alg}", self.algorithm), (f"environment {self.map}", self.environment)]


RUN_FIELDS = s.fields(RunSettings)


def algorithm_entry(name: str):
    from qmix.algorithms import ALGORITHMS

    return ALGORITHMS.entry(name)


def environment_settings(map_name: str, backend: str) -> type:
    """The settings class of the environment a run trains on."""
    from qmix.envs import environment_entry

    return environment_entry(map_name, backend).settings


def preset_names() -> list[str]:
    folder = resources.files("qmix") / "presets"
    return sorted(p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml"))


def load_preset(name: str) -> dict[str, Any]:
    path = resources.files("qmix") / "presets" / f"{name}.yaml"
    if not path.is_file():
        raise ConfigError(f"unknown preset '{name}'{did_you_mean(name, preset_names())}: "
                          f"choose one of {', '.join(preset_names())}")
    return yaml.safe_load(path.read_text()) or {}


def read_settings_file(path: Path) -> dict[str, Any]:
    """A YAML mapping of setting: value (a --config file or a run's config.yaml), or a one-line error."""
    if not path.exists():
        raise ConfigError(f"config file '{path}' does not exist")
    if not path.is_file():
        raise ConfigError(f"config file '{path}' is a folder, not a YAML file; pass the file inside it")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except UnicodeDecodeError:
        raise ConfigError(f"config file '{path}' is not UTF-8 text; restore it or pass another file") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"config file '{path}' is not valid YAML: {str(error).splitlines()[0]}") from None
    except OSError as error:
        raise ConfigError(f"config file '{path}' cannot be read ({error.strerror})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file '{path}' must hold a mapping of setting: value")
    return data


def parse_overrides(pairs: list[str]) -> dict[str, str]:
    """`["lr=1e-3", "double_q=false"]` -> {"lr": "1e-3", "double_q": "false"}."""
    result = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"override '{pair}' is not key=value; write e.g. lr=0.001")
        result[key.strip()] = value.strip()
    return result


def _owner(key: str, run_keys: dict, alg_keys: dict, env_keys: dict) -> str | None:
    for owner, keys in (("run", run_keys), ("algorithm", alg_keys), ("environment", env_keys)):
        if key in keys:
            return owner
    return None


def _unknown_setting(key: str, where: str, known: list[str], alg: str, map_name: str) -> ConfigError:
    return ConfigError(
        f"{where}: unknown setting '{key}'{did_you_mean(key, known)} for --alg {alg} on {map_name}; "
        f"`qmix config --alg {alg} --map {map_name}` lists the settings that apply"
    )


PRESET_SOURCE = "preset"  # a source named "preset '...'" is shared: see config_from_sources
SHARED_SOURCE = "shared settings"


def build_config(
    preset: str | None = None,
    overrides: dict[str, Any] | None = None,
    config_file: str | Path | None = None,
    shared: dict[str, Any] | None = None,
    **explicit: Any,
) -> Config:
    """Defaults <- preset <- shared settings <- config file <- explicit options <- key=value overrides;
    then validate. A preset and `shared` (e.g. a sweep's settings for several algorithms) are shared: each of
    their keys applies where the chosen algorithm or environment owns it."""
    sources: list[tuple[str, dict[str, Any]]] = []
    if preset:
        sources.append((f"{PRESET_SOURCE} '{preset}'", load_preset(preset)))
    if shared:
        sources.append((SHARED_SOURCE, dict(shared)))
    if config_file:
        path = Path(config_file)
        data = read_settings_file(path)
        data.pop("config_format", None)
        sources.append((f"config file '{path}'", data))
    sources.append(("command line", {k: v for k, v in explicit.items() if v is not None}))
    sources.append(("override", dict(overrides or {})))
    return config_from_sources(sources)


def config_from_sources(sources: list[tuple[str, dict[str, Any]]]) -> Config:
    """Resolve the algorithm and the environment first (later sources win), then give every setting to
    its owner, coerced to its type, and validate."""
    chosen = {"alg": RunSettings.alg, "map": RunSettings.map, "backend": RunSettings.backend}
    for where, values in sources:
        for key in chosen:
            if key in values:
                chosen[key] = s.coerce(RunSettings, key, values[key], where)
    entry = algorithm_entry(chosen["alg"])
    sources = [(where, _family_section(values, entry.facts.get("family"), where)) for where, values in sources]
    if chosen["backend"] not in BACKENDS:
        raise ConfigError(f"unknown backend '{chosen['backend']}': choose one of {', '.join(BACKENDS)}")
    env_cls = environment_settings(chosen["map"], chosen["backend"])
    alg_cls = entry.settings
    run_keys, alg_keys, env_keys = RUN_FIELDS, s.fields(alg_cls), s.fields(env_cls)
    known = [*run_keys, *alg_keys, *env_keys]
    updates: dict[str, dict[str, Any]] = {"run": {}, "algorithm": {}, "environment": {}}
    for where, values in sources:
        for key, value in values.items():
            owner = _owner(key, run_keys, alg_keys, env_keys)
            if owner is None and _is_shared(where) and key in settings_of_every_owner():
                continue  # another algorithm's or environment's setting: it applies there, not here
            if owner is None:
                raise _unknown_setting(key, where, known, chosen["alg"], chosen["map"])
            cls = {"run": RunSettings, "algorithm": alg_cls, "environment": env_cls}[owner]
            updates[owner][key] = s.coerce(cls, key, value, where)
    config = Config(
        **updates["run"],
        algorithm=alg_cls(**updates["algorithm"]),
        environment=env_cls(**updates["environment"]),
    )
    validate(config)
    _refuse_ignored_settings(config.algorithm, sources)
    return config


def _family_section(values: dict[str, Any], family: str | None, where: str) -> dict[str, Any]:
    """A source's settings for an algorithm of `family`: its plain keys, and the keys of the mapping under
    the family's name (e.g. a preset's `value_decomposition:` block); other families' blocks are left out."""
    from qmix.algorithms import ALGORITHMS

    families = {e.facts.get("family") for e in ALGORITHMS} - {None}
    flat = {}
    for key, value in values.items():
        if key not in families:
            flat[key] = value
        elif not isinstance(value, dict):
            raise ConfigError(f"{where}: '{key}' names an algorithm family; it holds a mapping of that family's "
                              f"settings, not {value!r}")
        elif key == family:
            flat.update(value)
    return flat


def _is_shared(where: str) -> bool:
    return where.startswith(PRESET_SOURCE) or where == SHARED_SOURCE


def settings_of_every_owner() -> set[str]:
    """Every setting some registered algorithm or environment (or the run) declares: a shared source's key
    outside this set is a mistake wherever it is applied."""
    from qmix.algorithms import ALGORITHMS
    from qmix.envs import ENVIRONMENTS, SC2

    names = set(RUN_FIELDS)
    for entry in [*ALGORITHMS, *ENVIRONMENTS, SC2]:
        names.update(s.fields(entry.settings))
    return names


def _refuse_ignored_settings(settings: Any, sources: list[tuple[str, dict[str, Any]]]) -> None:
    """A setting typed on the command line that another choice makes ignored is an error, not a no-op."""
    for where, values in sources:
        if where not in ("command line", "override"):
            continue  # presets and files set whole groups at once
        for key in values:
            choice, needed = getattr(settings, "ENABLED_BY", {}).get(key, (None, None))
            if choice is not None and getattr(settings, choice) != needed:
                shown = str(needed).lower() if isinstance(needed, bool) else needed
                raise ConfigError(f"{where}: '{key}' applies only with {choice}={shown} (it is "
                                  f"{getattr(settings, choice)!r}); add {choice}={shown}, or drop {key}")


def validate(config: Config) -> None:
    """Catch wrong values before any compiling starts: each owner checks its own, then the run's."""
    from qmix.algorithms.base import uses_replay

    RunSettings.validate(config, uses_replay(algorithm_entry(config.alg)))
    config.environment.validate(config)
    config.algorithm.validate(config)


def replace(config: Config, **changes: Any) -> Config:
    """`config` with some settings changed, by their flat names, validated."""
    return config_from_sources([("saved", config.to_dict()), ("change", changes)])


def config_to_yaml(config: Config) -> str:
    return yaml.safe_dump({"config_format": CONFIG_FORMAT, **config.to_dict()}, sort_keys=False)


def load_saved_config(path: Path) -> Config:
    """A run's config.yaml as this version wrote it; an earlier version's gets a one-line error."""
    data = read_settings_file(path)
    version = data.pop("config_format", None)
    if version != CONFIG_FORMAT:
        raise ConfigError(
            f"'{path}' was written by an earlier version of qmix (config format {version or 1}; this version "
            f"reads format {CONFIG_FORMAT}); train the run again with this version"
        )
    return config_from_sources([(f"config file '{path}'", data)])
