"""One typed, frozen training config; YAML presets; `key=value` overrides; validation with clear errors.

The config is flat on purpose: every setting is one `key=value` away on the command line, and the
resolved config a run writes is one readable YAML mapping. Intervals and schedules name their unit.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml


class ConfigError(ValueError):
    """A setting is wrong. The message is one line: what, where, how to fix."""


BACKENDS = ("smax", "sc2")  # SMAX in JAX (compiled), or real StarCraft II through SMAC (docs/sc2.md)

# Each algorithm of the paper is a mixer over the one shared learner (PAPER.md section 2).
ALGORITHMS: dict[str, str] = {
    "qmix": "qmix",
    "vdn": "vdn",
    "iql": "none",
    "qmix_ns": "qmix_ns",
    "qmix_lin": "qmix_lin",
    "vdn_s": "vdn_s",
}


@dataclass(frozen=True)
class Config:
    # --- what to train on ---
    map: str = "3m"  # SMAX map name, or "two_step"; with backend=sc2 a SMAC map name
    backend: str = "smax"  # "smax" (JAX, compiled) or "sc2" (real StarCraft II through SMAC, optional)
    alg: str = "qmix"  # one of ALGORITHMS
    # "smac" (SMAC's shaped reward, max return 20), "smac_signed" (the same minus half the team's own
    # losses: SMAC's reward_only_positive=False) or "smax" (SMAX's native one)
    reward: str = "smac"
    episode_limit: int = 0  # 0: the map's own limit (SMAC's)
    seed: int = 0
    num_seeds: int = 1  # independent runs trained side by side in one compiled program

    # --- agent network (parameters shared across agents) ---
    agent: str = "rnn"  # "rnn" (DRQN: Dense-ReLU-GRU-Dense) or "ff" (Dense-ReLU-Dense)
    agent_hidden_dim: int = 64
    obs_last_action: bool = True  # append the agent's previous action, one-hot
    obs_agent_id: bool = True  # append the agent's index, one-hot
    # the mixer's state also holds every agent's previous action, one-hot (SMAC's state_last_action)
    state_last_action: bool = False

    # --- mixer ---
    mixing_embed_dim: int = 32
    hypernet_layers: int = 2  # 1: linear hypernetworks (the paper); 2: Dense-ReLU-Dense (later reference code)
    hypernet_embed_dim: int = 64

    # --- learner ---
    gamma: float = 0.99
    optimizer: str = "rmsprop"  # "rmsprop" (PyMARL's settings) or "adam"
    lr: float = 5e-4
    # > 0: the step size falls linearly from lr to lr_finish over this many learner updates, then stays
    lr_anneal_updates: int = 0
    lr_finish: float = 5e-5
    rmsprop_alpha: float = 0.99
    rmsprop_eps: float = 1e-5
    adam_eps: float = 1e-8
    grad_norm_clip: float = 10.0  # 0 disables clipping
    double_q: bool = True
    td_lambda: float = 0.0  # 0: one-step targets; in (0, 1]: TD(lambda) over the episode
    target_update_interval_episodes: int = 200  # hard copy of the online network, in collected episodes
    target_update_tau: float = 0.0  # > 0: soft (Polyak) update after every learner update instead
    # > 0: also keep an exponential moving average of the agent network (this weight on the newest
    # parameters after every learner update); tests play it too and it is saved beside the final parameters
    policy_average_tau: float = 0.0
    time_buckets: int = 4  # compiled batch lengths; a batch of short episodes is cut to skip padding (1: off)

    # --- collection and replay ---
    num_envs: int = 1  # environments run side by side; each contributes one whole episode per iteration
    updates_per_episode: float = 1.0  # learner updates per collected episode (explicit, not tied to num_envs)
    epsilon_start: float = 1.0
    epsilon_finish: float = 0.05
    epsilon_anneal_env_steps: int = 50_000
    buffer_size_episodes: int = 5000
    batch_size: int = 32  # episodes per learner update

    # --- budget and evaluation ---
    env_steps: int = 2_050_000  # training budget in environment steps
    test_interval_env_steps: int = 10_000  # 0: use test_interval_episodes instead
    test_interval_episodes: int = 0  # the paper's protocol: test every 100 training episodes
    test_episodes: int = 32  # greedy decentralised episodes per test

    # --- checkpoints ---
    checkpoint_interval_env_steps: int = 100_000  # 0: only at the end
    keep_checkpoints: int = 2
    save_replay: bool = False  # also save the replay buffer and environments (exact resume)

    # --- extra, free-form label for the run folder name ---
    tag: str = field(default="")

    @property
    def mixer(self) -> str:
        return ALGORITHMS[self.alg]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


FIELDS: dict[str, dataclasses.Field] = {f.name: f for f in dataclasses.fields(Config)}
_TYPES = typing.get_type_hints(Config)


def preset_names() -> list[str]:
    folder = resources.files("qmix") / "presets"
    return sorted(p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml"))


def load_preset(name: str) -> dict[str, Any]:
    path = resources.files("qmix") / "presets" / f"{name}.yaml"
    if not path.is_file():
        raise ConfigError(f"unknown preset '{name}': choose one of {', '.join(preset_names())}")
    return yaml.safe_load(path.read_text()) or {}


def _did_you_mean(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _coerce(key: str, value: Any, where: str) -> Any:
    """Turn a YAML or command-line value into the field's type, or say clearly why not."""
    kind = _TYPES[key]
    if isinstance(kind, types.UnionType):  # e.g. `int | None`
        kind = next(t for t in typing.get_args(kind) if t is not type(None))
    if isinstance(value, str) and kind is not str:
        with contextlib.suppress(yaml.YAMLError):
            value = yaml.safe_load(value)  # "0.001" -> 0.001, "true" -> True, "10_000" -> 10000
        if isinstance(value, str) and kind in (int, float):
            with contextlib.suppress(ValueError):  # YAML 1.1 reads "1e-3" as text; Python reads it as a number
                value = float(value.replace("_", "")) if kind is float else int(value.replace("_", ""))
    if kind is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: '{key}' must be true or false, got {value!r}")
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int | float) or float(value) != int(value):
            raise ConfigError(f"{where}: '{key}' must be a whole number, got {value!r}")
        return int(value)
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{where}: '{key}' must be a number, got {value!r}")
        return float(value)
    if kind is str:
        return str(value)
    return value


def apply_settings(base: Config, settings: dict[str, Any], where: str) -> Config:
    """Return `base` with `settings` applied; unknown keys and wrong types raise ConfigError."""
    updates = {}
    for key, value in settings.items():
        if key not in FIELDS:
            raise ConfigError(
                f"{where}: unknown setting '{key}'{_did_you_mean(key, list(FIELDS))}; "
                "`qmix config` lists every setting"
            )
        updates[key] = _coerce(key, value, where)
    return dataclasses.replace(base, **updates)


def parse_overrides(pairs: list[str]) -> dict[str, str]:
    """`["lr=1e-3", "double_q=false"]` -> {"lr": "1e-3", "double_q": "false"}."""
    result = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"override '{pair}' is not key=value; write e.g. lr=0.001")
        result[key.strip()] = value.strip()
    return result


def build_config(
    preset: str | None = None,
    overrides: dict[str, Any] | None = None,
    config_file: str | Path | None = None,
    **explicit: Any,
) -> Config:
    """Defaults <- preset <- config file <- explicit options <- key=value overrides; then validate."""
    config = Config()
    if preset:
        config = apply_settings(config, load_preset(preset), f"preset '{preset}'")
    if config_file:
        path = Path(config_file)
        if not path.is_file():
            raise ConfigError(f"config file '{path}' does not exist")
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as error:
            raise ConfigError(f"config file '{path}' is not valid YAML: {str(error).splitlines()[0]}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"config file '{path}' must hold a mapping of setting: value")
        config = apply_settings(config, data, f"config file '{path}'")
    explicit = {k: v for k, v in explicit.items() if v is not None}
    config = apply_settings(config, explicit, "command line")
    config = apply_settings(config, overrides or {}, "override")
    validate(config)
    return config


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


def validate(config: Config) -> None:
    """Catch wrong values before any compiling starts."""
    # local: keeps config importable without the env stack
    from qmix.envs import REWARD_SETTINGS, list_environments

    c = config
    _check(c.alg in ALGORITHMS, f"unknown algorithm '{c.alg}'{_did_you_mean(c.alg, list(ALGORITHMS))}: "
           f"choose one of {', '.join(ALGORITHMS)}")
    _check(c.backend in BACKENDS, f"unknown backend '{c.backend}': choose one of {', '.join(BACKENDS)}")
    if c.backend == "sc2":
        _check(c.map != "two_step", "the two-step game has no StarCraft II version; drop backend=sc2")
        _check(c.reward in ("smac", "smac_signed"),
               f"backend=sc2 pays SMAC's own reward (smac or smac_signed); drop reward={c.reward}")
        _check(c.episode_limit == 0, "backend=sc2 uses the map's own episode limit (SMAC's); drop episode_limit")
        _check(not c.state_last_action,
               "backend=sc2's state already holds every agent's last action (SMAC's default); drop state_last_action")
    else:
        names = list_environments()
        _check(c.map in names,
               f"unknown map '{c.map}'{_did_you_mean(c.map, names)}: choose one of {', '.join(names)}")
    _check(not (c.state_last_action and c.map == "two_step"),
           "state_last_action is for the StarCraft maps (the two-step game's tables mix the bare state); "
           "drop state_last_action")
    _check(c.reward in REWARD_SETTINGS, f"reward must be one of {', '.join(REWARD_SETTINGS)}; got '{c.reward}'")
    _check(c.agent in ("rnn", "ff"), f"agent must be 'rnn' or 'ff', got '{c.agent}'")
    _check(c.optimizer in ("rmsprop", "adam"), f"optimizer must be 'rmsprop' or 'adam', got '{c.optimizer}'")
    _check(c.hypernet_layers in (1, 2), f"hypernet_layers must be 1 or 2, got {c.hypernet_layers}")
    for key in ("agent_hidden_dim", "mixing_embed_dim", "hypernet_embed_dim", "num_envs", "batch_size",
                "buffer_size_episodes", "test_episodes", "num_seeds", "env_steps", "keep_checkpoints",
                "time_buckets"):
        _check(getattr(c, key) >= 1, f"{key} must be at least 1, got {getattr(c, key)}")
    for key in ("episode_limit", "epsilon_anneal_env_steps", "test_interval_env_steps",
                "test_interval_episodes", "checkpoint_interval_env_steps", "target_update_interval_episodes",
                "lr_anneal_updates"):
        _check(getattr(c, key) >= 0, f"{key} must not be negative, got {getattr(c, key)}")
    _check(c.lr > 0, f"lr must be positive, got {c.lr}")
    _check(c.lr_finish > 0, f"lr_finish must be positive, got {c.lr_finish}")
    _check(0 < c.rmsprop_alpha < 1, f"rmsprop_alpha must be in (0, 1), got {c.rmsprop_alpha}")
    _check(c.rmsprop_eps > 0 and c.adam_eps > 0, "rmsprop_eps and adam_eps must be positive")
    _check(c.grad_norm_clip >= 0, f"grad_norm_clip must not be negative, got {c.grad_norm_clip}")
    _check(c.updates_per_episode >= 0, f"updates_per_episode must not be negative, got {c.updates_per_episode}")
    for key in ("gamma", "td_lambda", "target_update_tau", "policy_average_tau", "epsilon_start", "epsilon_finish"):
        _check(0 <= getattr(c, key) <= 1, f"{key} must be in [0, 1], got {getattr(c, key)}")
    _check(c.batch_size <= c.buffer_size_episodes,
           f"batch_size ({c.batch_size}) is larger than the replay (buffer_size_episodes={c.buffer_size_episodes}); "
           "lower batch_size or raise buffer_size_episodes")
    _check(c.num_envs <= c.buffer_size_episodes,
           f"num_envs ({c.num_envs}) is larger than the replay (buffer_size_episodes={c.buffer_size_episodes}); "
           "each iteration stores num_envs episodes")
    _check(c.test_interval_env_steps > 0 or c.test_interval_episodes > 0,
           "set test_interval_env_steps or test_interval_episodes above 0")
    _check(c.target_update_interval_episodes > 0 or c.target_update_tau > 0,
           "set target_update_interval_episodes > 0 (hard updates) or target_update_tau > 0 (soft updates)")


def config_to_yaml(config: Config) -> str:
    return yaml.safe_dump(config.to_dict(), sort_keys=False)
