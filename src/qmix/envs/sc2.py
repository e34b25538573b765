"""Real StarCraft II through SMAC (optional): a host-side environment, stepped from Python.

The game cannot run inside a compiled JAX loop, so `SC2Env` is the host-side counterpart of the SMAX
adapter: numpy in, numpy out, one game per instance. The training loop collects its episodes with
`qmix.learn.host_rollout` and hands them to the same compiled store / learn / target-update code as SMAX.

Needs the game and the `smac` package of the StarCraft Multi-Agent Challenge (docs/sc2.md); without them
every entry point fails with one line saying what to install.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from qmix.errors import ConfigError
from qmix.settings import check, check_choices, setting

INSTALL_HINT = (
    "install the StarCraft Multi-Agent Challenge package with "
    "`pip install git+https://github.com/oxwhirl/smac.git` (the `smac` package on PyPI is SMAC3, a different "
    "project), install StarCraft II with its SMAC maps and set SC2PATH; see docs/sc2.md"
)


@dataclass
class HostStep:
    """What the agents and the learner see after a reset or a step, as numpy arrays (see envs/base.py)."""

    obs: np.ndarray  # [N, obs_dim] float32
    state: np.ndarray  # [state_dim] float32
    avail_actions: np.ndarray  # [N, n_actions] bool
    reward: float = 0.0
    terminated: bool = False
    truncated: bool = False
    won: bool = False
    info: dict[str, float] = field(default_factory=dict)  # the step's values of the environment's own measures


def load_smac_env_class() -> Callable[..., Any]:
    """SMAC's `StarCraft2Env`, or a one-line ConfigError saying how to install it."""
    try:
        from smac.env import StarCraft2Env
    except ImportError:
        raise ConfigError(f"backend=sc2 needs SMAC, which is not installed: {INSTALL_HINT}") from None
    return StarCraft2Env


def check_game_installed() -> None:
    """SMAC looks for the game in SC2PATH, else in ~/StarCraftII; fail early and clearly when neither exists."""
    where = Path(os.environ.get("SC2PATH") or Path.home() / "StarCraftII")
    if not where.is_dir():
        raise ConfigError(f"backend=sc2 cannot find StarCraft II at '{where}': {INSTALL_HINT}")


@dataclass(frozen=True)
class Sc2Settings:
    """How a SMAC map is played in StarCraft II (its time limit and state are SMAC's own)."""

    reward: str = setting("smac", "smac (SMAC's shaped reward) or smac_signed (reward_only_positive=False)",
                          ("smac", "smac_signed"))

    def validate(self, config) -> None:
        check_choices(self)
        check(config.map != "two_step", "the two-step game has no StarCraft II version; drop backend=sc2")


def make_sc2(name: str, settings: Sc2Settings, seed: int = 0) -> SC2Env:
    """`seed` is the game's own seed (JAX environments take their randomness from keys instead)."""
    return SC2Env(name, seed=seed, reward_only_positive=settings.reward != "smac_signed")


class SC2Env:
    """One SMAC game behind a numpy version of the environment interface; the game starts on first reset."""

    host_side = True  # stepped from Python, not inside the compiled loop
    has_win = True

    def __init__(
        self,
        map_name: str,
        seed: int = 0,
        reward_only_positive: bool = True,
        smac_env_class: Callable[..., Any] | None = None,
    ):
        if smac_env_class is None:
            smac_env_class = load_smac_env_class()
            check_game_installed()
        try:
            self.game = smac_env_class(map_name=map_name, seed=seed, reward_only_positive=reward_only_positive)
        except KeyError:  # SMAC's map registry does not know the name
            raise ConfigError(
                f"SMAC has no map '{map_name}'; use one of SMAC's maps (3m, 8m, 2s3z, 3s5z, 1c3s5z, ...)"
            ) from None
        info = self.game.get_env_info()
        self.name = map_name
        self.n_agents = int(info["n_agents"])
        self.n_actions = int(info["n_actions"])
        self.obs_dim = int(info["obs_shape"])
        self.state_dim = int(info["state_shape"])
        self.episode_limit = int(info["episode_limit"])

    def reset(self) -> HostStep:
        self.game.reset()
        return self._observe()

    def step(self, actions: np.ndarray) -> HostStep:
        """actions: [N] ints. SMAC ends an episode at its time limit with terminated=True and
        info["episode_limit"]=True; that is a truncation here (the learner bootstraps through it)."""
        reward, ended, info = self.game.step([int(a) for a in actions])
        truncated = bool(ended and info.get("episode_limit", False))
        step = self._observe()
        step.reward = float(reward)
        step.terminated = bool(ended) and not truncated
        step.truncated = truncated
        step.won = bool(info.get("battle_won", False))
        return step

    def close(self) -> None:
        self.game.close()

    def _observe(self) -> HostStep:
        return HostStep(
            obs=np.asarray(self.game.get_obs(), np.float32).reshape(self.n_agents, self.obs_dim),
            state=np.asarray(self.game.get_state(), np.float32).reshape(self.state_dim),
            avail_actions=np.asarray(self.game.get_avail_actions(), bool).reshape(self.n_agents, self.n_actions),
        )
