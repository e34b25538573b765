"""The settings Weighted QMIX adds to the value-decomposition family's (the unrestricted Q-hat* and alpha)."""

from __future__ import annotations

from dataclasses import dataclass

from qmix.settings import check, setting


@dataclass(frozen=True)
class WeightingSettings:
    weighting_alpha: float = setting(0.1, "Weighted QMIX: the weight of the QMIX loss on the joint actions the "
                                     "weighting does not favour (alpha; the authors' default 0.1)")
    central_agent_hidden_dim: int = setting(64, "Weighted QMIX: width of Q-hat*'s own agent network")
    central_mixing_embed_dim: int = setting(256, "Weighted QMIX: width of Q-hat*'s feed-forward mixer "
                                            "(three hidden layers, and of its V(s))")

    def validate(self, config) -> None:
        check(0 < self.weighting_alpha <= 1, f"weighting_alpha must be in (0, 1], got {self.weighting_alpha}")
        for key in ("central_agent_hidden_dim", "central_mixing_embed_dim"):
            check(getattr(self, key) >= 1, f"{key} must be at least 1, got {getattr(self, key)}")
