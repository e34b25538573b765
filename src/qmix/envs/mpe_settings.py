"""How MPE simple_spread is played (free of JAX and jaxmarl: listing maps and checking settings import only
this)."""

from __future__ import annotations

from dataclasses import dataclass

from qmix.settings import check, setting

DEFAULT_AGENTS = 3  # jaxmarl's default: 3 agents, 3 landmarks
DEFAULT_EPISODE_LIMIT = 25  # jaxmarl's (and PettingZoo's) max_steps


@dataclass(frozen=True)
class MpeSettings:
    """How simple_spread is played."""

    agents: int = setting(DEFAULT_AGENTS, "agents, and as many landmarks to cover")
    episode_limit: int = setting(DEFAULT_EPISODE_LIMIT, "time limit in steps (jaxmarl's max_steps: 25)")

    def validate(self, config) -> None:
        check(self.agents >= 1, f"agents must be at least 1, got {self.agents}")
        check(self.episode_limit >= 1, f"episode_limit must be at least 1 step, got {self.episode_limit}")


@dataclass(frozen=True)
class MpeCommunicationSettings:
    """How simple_speaker_listener and simple_reference are played (two agents, three landmarks, fixed)."""

    episode_limit: int = setting(DEFAULT_EPISODE_LIMIT, "time limit in steps (jaxmarl's max_steps: 25)")

    def validate(self, config) -> None:
        check(self.episode_limit >= 1, f"episode_limit must be at least 1 step, got {self.episode_limit}")
