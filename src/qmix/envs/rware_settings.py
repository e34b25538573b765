"""Robotic Warehouse's scenarios and settings, free of JAX and jumanji (listing maps imports only this)."""

from __future__ import annotations

from dataclasses import dataclass

from qmix.settings import check, setting

PREFIX = "rware-"
# rware's layouts (shelf rows, shelf columns); the request queue holds as many shelves as there are agents
# (rware's default difficulty); columns 8 shelves high, sensor range 1, 500 steps.
LAYOUTS = {"tiny": (1, 3), "small": (2, 3)}
SCENARIOS = {"tiny-2ag": ("tiny", 2), "tiny-4ag": ("tiny", 4), "small-4ag": ("small", 4)}


@dataclass(frozen=True)
class Warehouse:
    shelf_rows: int
    shelf_columns: int
    agents: int

    @classmethod
    def of(cls, map_name: str) -> Warehouse:
        layout, agents = SCENARIOS[map_name.removeprefix(PREFIX)]
        return cls(*LAYOUTS[layout], agents)

    def describe(self) -> str:
        return (f"Robotic Warehouse (jumanji): {self.agents} robots deliver requested shelves, {self.shelf_rows} x "
                f"{self.shelf_columns} shelf blocks, 500 steps; a collision ends the episode (docs/rware.md)")


@dataclass(frozen=True)
class RwareSettings:
    """How a Robotic Warehouse scenario is played."""

    episode_limit: int = setting(500, "time limit in steps (rware's and EPyMARL's: 500)")

    def validate(self, config) -> None:
        check(self.episode_limit >= 1, f"episode_limit must be at least 1 step, got {self.episode_limit}")
