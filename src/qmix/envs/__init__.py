"""Environments behind one small interface (base.py), found by name in one registry.

An environment is an adapter file (the `Environment` protocol, a settings class, a `make(name,
settings)` function) and a registry line here.
"""

from __future__ import annotations

from qmix.envs.base import Environment, TimeStep
from qmix.envs.mpe import MpeSettings, make_simple_spread
from qmix.envs.sc2 import Sc2Settings, make_sc2
from qmix.envs.smax import SmaxSettings, describe_map, list_maps, make_smax
from qmix.envs.two_step import make_two_step
from qmix.registry import Entry, Registry
from qmix.settings import NoSettings

__all__ = ["ENVIRONMENTS", "Environment", "TimeStep", "environment_entry", "make_env"]

ENVIRONMENTS: Registry = Registry("map")
ENVIRONMENTS.add("two_step", make_two_step, "the two-step matrix game of the QMIX paper (section 5, Table 1)",
                 settings=NoSettings)
for _name in list_maps():
    ENVIRONMENTS.add(_name, make_smax, describe_map(_name), settings=SmaxSettings)
ENVIRONMENTS.add("simple_spread", make_simple_spread, "MPE simple_spread (jaxmarl): 3 agents cover 3 landmarks "
                 "without colliding, 25 steps, no win (docs/mpe.md)", settings=MpeSettings)

# backend=sc2 plays any SMAC map in real StarCraft II, stepped from Python (docs/sc2.md)
SC2 = Entry("sc2", make_sc2, "a SMAC map in StarCraft II", {"settings": Sc2Settings})


def environment_entry(name: str, backend: str = "smax") -> Entry:
    if backend == "sc2":
        return SC2
    return ENVIRONMENTS.entry(name)


def make_env(config, seed: int = 0) -> Environment:
    """The environment a config trains on; `seed` seeds host-side games (JAX ones take keys instead)."""
    entry = environment_entry(config.map, config.backend)
    if config.backend == "sc2":
        return entry.target(config.map, config.environment, seed=seed)
    return entry.target(config.map, config.environment)
