"""The settings the QPLEX mixer declares (its attention over the advantages); the algorithm it trains under
has them beside the value-decomposition family's."""

from __future__ import annotations

from dataclasses import dataclass

from qmix.settings import check, setting


@dataclass(frozen=True)
class QPLEXSettings:
    qplex_heads: int = setting(4, "QPLEX: attention heads weighting the advantages (the authors' num_kernel)")
    qplex_adv_hypernet_layers: int = setting(2, "QPLEX: depth of each head's networks (1 linear, 2 or 3 with ReLU)")
    qplex_adv_hypernet_embed: int = setting(64, "QPLEX: width of each head's hidden layers")

    def validate(self, config) -> None:
        check(self.qplex_heads >= 1, f"qplex_heads must be at least 1, got {self.qplex_heads}")
        check(self.qplex_adv_hypernet_layers in (1, 2, 3),
              f"qplex_adv_hypernet_layers must be 1, 2 or 3, got {self.qplex_adv_hypernet_layers}")
        check(self.qplex_adv_hypernet_embed >= 1,
              f"qplex_adv_hypernet_embed must be at least 1, got {self.qplex_adv_hypernet_embed}")
