"""The setting the QMIX mixer declares: LayerNorm in its hypernetworks. The PQN family has the same setting
in its own (on by default there); QMIX trained from replay has it off, as in the paper."""

from __future__ import annotations

from dataclasses import dataclass

from qmix.settings import setting


@dataclass(frozen=True)
class QMixerSettings:
    mixer_layer_norm: bool = setting(False, "LayerNorm in the hidden layers of the mixer's hypernetworks and "
                                     "V(s): their inputs, the global state, are not normalised")

    def validate(self, config) -> None:
        pass  # a flag: any value is valid
