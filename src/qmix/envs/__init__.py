"""Environments behind one small interface (see base.py), found by name."""

from __future__ import annotations

from qmix.envs.base import Environment, TimeStep

__all__ = ["REWARD_SETTINGS", "Environment", "TimeStep", "list_environments", "make_env"]

# How SMAX maps pay their reward (envs/smax.py, docs/smax.md): SMAC's shaped reward, the same with the
# team's own losses subtracted (SMAC's reward_only_positive=False), or SMAX's native reward.
REWARD_SETTINGS = ("smac", "smac_signed", "smax")


def _smax_maps() -> list[str]:
    from qmix.envs.smax import list_maps

    return list_maps()


def list_environments() -> list[str]:
    return ["two_step", *_smax_maps()]


def make_env(name: str, reward: str = "smac", episode_limit: int = 0, backend: str = "smax", seed: int = 0):
    """The environment called `name`: "two_step" or a SMAX map ("3m", "2s3z", ...), an `Environment`.

    With backend="sc2": SMAC's map `name` in real StarCraft II, a host-side env (envs/sc2.py); `seed` is
    the game's own seed (JAX environments take their randomness from the keys instead).
    """
    if backend == "sc2":
        from qmix.envs.sc2 import SC2Env

        return SC2Env(name, seed=seed, reward_only_positive=reward != "smac_signed")
    if name == "two_step":
        from qmix.envs.two_step import TwoStepGame

        return TwoStepGame()
    from qmix.envs.smax import SmaxEnv

    return SmaxEnv(name, reward=reward, episode_limit=episode_limit or None)
