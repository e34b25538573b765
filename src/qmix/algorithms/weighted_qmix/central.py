"""Q-hat*'s mixer in Weighted QMIX: unrestricted, so that it can represent any joint action-value."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from qmix.nets.mixers import MixerInput, StateValue


class CentralMixer(nn.Module):
    """A feed-forward network of the state and the agents' Q-hat* utilities (three ReLU layers), plus V(s):
    no sign constraint on any weight, as the authors' "ff" central mixer. -> [..., 1]."""

    embed_dim: int = 256

    @nn.compact
    def __call__(self, x: MixerInput) -> jax.Array:
        h = jnp.concatenate([x.state, x.chosen_qs], axis=-1)
        for _ in range(3):
            h = nn.relu(nn.Dense(self.embed_dim)(h))
        return nn.Dense(1)(h) + StateValue(self.embed_dim, name="value")(x.state)
