"""Level-Based Foraging's scenarios and settings, free of JAX and jumanji (listing maps imports only this)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from qmix.settings import check, setting

# The scenarios of EPyMARL's benchmark (Papoudakis et al., 2021), named as there without "Foraging-" and "-v2":
# [2s-]<size>x<size>-<agents>p-<food>f[-coop]; "2s": each agent sees 2 cells around it, else the whole grid.
SCENARIOS = ("8x8-2p-2f-coop", "2s-8x8-2p-2f-coop", "10x10-3p-3f", "2s-10x10-3p-3f", "15x15-3p-5f",
             "15x15-4p-3f", "15x15-4p-5f")
PREFIX = "lbf-"  # the map names: lbf-8x8-2p-2f-coop, ...
PATTERN = re.compile(r"^(?:(?P<sight>\d+)s-)?(?P<size>\d+)x(?P=size)-(?P<agents>\d+)p-(?P<food>\d+)f(?P<coop>-coop)?$")


@dataclass(frozen=True)
class Scenario:
    grid_size: int
    agents: int
    food: int
    sight: int  # cells seen around an agent (the grid size: all of it)
    force_coop: bool  # every food needs the agents together

    @classmethod
    def parse(cls, map_name: str) -> Scenario:
        found = PATTERN.match(map_name.removeprefix(PREFIX))
        if found is None:
            raise ValueError(f"'{map_name}' is not a Level-Based Foraging scenario ({PREFIX}[2s-]NxN-Ap-Ff[-coop])")
        size = int(found["size"])
        return cls(size, int(found["agents"]), int(found["food"]), int(found["sight"] or size), bool(found["coop"]))

    def describe(self) -> str:
        seen = "the whole grid" if self.sight >= self.grid_size else f"{self.sight} cells around them"
        coop = ", every food needs them together" if self.force_coop else ""
        return (f"Level-Based Foraging (jumanji): {self.agents} agents, {self.food} food, a grid of {self.grid_size}x"
                f"{self.grid_size}, seeing {seen}{coop}, 50 steps (docs/lbf.md)")


@dataclass(frozen=True)
class LbfSettings:
    """How a Level-Based Foraging scenario is played."""

    episode_limit: int = setting(50, "time limit in steps (EPyMARL's: 50; jumanji's default is 100)")
    max_agent_level: int = setting(3, "agents' levels are drawn from 1 to this (lbforaging's benchmark: 3)")

    def validate(self, config) -> None:
        check(self.episode_limit >= 1, f"episode_limit must be at least 1 step, got {self.episode_limit}")
        check(self.max_agent_level >= 2, f"max_agent_level must be at least 2 (jumanji's), got {self.max_agent_level}")
