"""Environments behind one small interface (base.py), found by name in one registry.

An environment is an adapter file (the `Environment` protocol, a settings class, a `make(name,
settings)` function) and a registry line here. An entry's facts say what else it offers: `heuristic`
(the paper's attack-the-closest-enemy baseline plays it) and `render` (`qmix render` can draw it); `suite`
groups it in `qmix maps`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from qmix.envs.lbf_settings import PREFIX as LBF_PREFIX
from qmix.envs.lbf_settings import SCENARIOS as LBF_SCENARIOS
from qmix.envs.lbf_settings import LbfSettings, Scenario
from qmix.envs.mpe_settings import MpeCommunicationSettings, MpeSettings
from qmix.envs.rware_settings import PREFIX as RWARE_PREFIX
from qmix.envs.rware_settings import SCENARIOS as RWARE_SCENARIOS
from qmix.envs.rware_settings import RwareSettings, Warehouse
from qmix.envs.sc2 import Sc2Settings
from qmix.envs.smax_maps import SmaxSettings, describe_map, list_maps
from qmix.errors import ConfigError
from qmix.registry import Entry, Registry
from qmix.settings import NoSettings

if TYPE_CHECKING:
    from qmix.envs.base import Environment, EpisodeMetrics

__all__ = ["ENVIRONMENTS", "Environment", "TimeStep", "declared_metrics", "environment_entry", "make_env",
           "require_capability"]


def __getattr__(name: str):
    # the interface's types, imported on first use (they import JAX)
    if name in ("Environment", "TimeStep"):
        from qmix.envs import base

        return getattr(base, name)
    raise AttributeError(f"module 'qmix.envs' has no attribute '{name}'")

ENVIRONMENTS: Registry = Registry("map")
# Adapters are named "module:function" and imported when a run needs them (JAX and jaxmarl load slowly).
ENVIRONMENTS.add("two_step", "qmix.envs.two_step:make_two_step", "the two-step matrix game of the QMIX paper (section 5, Table 1)",
                 settings=NoSettings, suite="matrix games")
ENVIRONMENTS.add("matrix_game", "qmix.envs.matrix_game:make_matrix_game",
                 "the one-step matrix game of Weighted QMIX (section 6.1) that monotonic mixing cannot solve",
                 settings=NoSettings, suite="matrix games")
for _name in list_maps():
    ENVIRONMENTS.add(_name, "qmix.envs.smax:make_smax", describe_map(_name), settings=SmaxSettings, heuristic=True, render=True,
                     suite="SMAX (jaxmarl)")
ENVIRONMENTS.add("simple_spread", "qmix.envs.mpe:make_simple_spread", "MPE simple_spread (jaxmarl): 3 agents cover 3 landmarks "
                 "without colliding, 25 steps, no win (docs/mpe.md)", settings=MpeSettings, suite="MPE (jaxmarl)")
ENVIRONMENTS.add("simple_speaker_listener", "qmix.envs.mpe_communication:make_speaker_listener",
                 "MPE simple_speaker_listener (jaxmarl): a speaker names the goal landmark, a listener goes there, "
                 "25 steps, no win", settings=MpeCommunicationSettings, suite="MPE (jaxmarl)")
ENVIRONMENTS.add("simple_reference", "qmix.envs.mpe_communication:make_reference",
                 "MPE simple_reference (jaxmarl): two agents each tell the other its goal landmark while moving, "
                 "25 steps, no win", settings=MpeCommunicationSettings, suite="MPE (jaxmarl)")
for _scenario in LBF_SCENARIOS:  # Level-Based Foraging (jumanji, the `jumanji` extra): EPyMARL's scenarios
    ENVIRONMENTS.add(LBF_PREFIX + _scenario, "qmix.envs.lbf:make_lbf", Scenario.parse(_scenario).describe(),
                     settings=LbfSettings, suite="Level-Based Foraging (jumanji)")
for _scenario in RWARE_SCENARIOS:  # Robotic Warehouse (jumanji, the `jumanji` extra): rware's scenarios
    ENVIRONMENTS.add(RWARE_PREFIX + _scenario, "qmix.envs.rware:make_rware",
                     Warehouse.of(RWARE_PREFIX + _scenario).describe(), settings=RwareSettings,
                     suite="Robotic Warehouse (jumanji)")

# backend=sc2 plays any SMAC map in real StarCraft II, stepped from Python (docs/sc2.md)
SC2 = Entry("sc2", "qmix.envs.sc2:make_sc2", "a SMAC map in StarCraft II", {"settings": Sc2Settings})


def environment_entry(name: str, backend: str = "smax") -> Entry:
    if backend == "sc2":
        return SC2
    return ENVIRONMENTS.entry(name)


def make_env(config, seed: int = 0) -> Environment:
    """The environment a config trains on; `seed` seeds host-side games (JAX ones take keys instead)."""
    entry = environment_entry(config.map, config.backend)
    if config.backend == "sc2":
        return entry.load()(config.map, config.environment, seed=seed)
    return entry.load()(config.map, config.environment)


def declared_metrics(name: str, backend: str = "smax") -> EpisodeMetrics:
    """What the environment of a map declares about its episodes (made with its default settings; a real
    StarCraft II map is not started: its adapter class declares the same)."""
    from qmix.envs.base import episode_metrics

    entry = environment_entry(name, backend)
    if backend == "sc2":
        from qmix.envs.sc2 import SC2Env

        return episode_metrics(SC2Env)
    return episode_metrics(entry.load()(name, entry.settings()))


def require_capability(name: str, capability: str, what: str, backend: str = "smax") -> None:
    """A one-line ConfigError unless map `name`'s registry entry offers `capability` (heuristic, render):
    `what` was asked (e.g. "`qmix render` of 'runs/x'"), where it is missing, and the maps that have it."""
    entry = environment_entry(name, backend)
    if entry.facts.get(capability) and backend == "smax":
        return
    offering = [e.name for e in ENVIRONMENTS if e.facts.get(capability)]
    where = f"'{name}' in real StarCraft II (backend=sc2)" if backend == "sc2" else f"the environment '{name}'"
    raise ConfigError(f"{what}: {where} does not offer {capability}; "
                      f"use a map that does, e.g. {', '.join(offering[:6])}")
