"""Weighted QMIX (Rashid et al., "Weighted QMIX: Expanding Monotonic Value Function Factorisation for Deep
Multi-Agent Reinforcement Learning", NeurIPS 2020): CW-QMIX and OW-QMIX.

QMIX's projection weighs every joint action's error alike, and so can settle on a monotonic Q_tot whose
greedy joint action is not the best. Weighted QMIX learns, beside QMIX, an unrestricted joint value Q-hat*
(its own agent network and a feed-forward mixer, nothing forced monotonic) and trains both towards one
target,
    y = r + gamma * Q-hat*_target(s', u'),  u' = the online QMIX agents' greedy joint action,
(TD(lambda) over the episode when td_lambda > 0; `double_q` plays no part: u' is always QMIX's greedy
joint action, as the method defines it). Q-hat* regresses to y unweighted; QMIX's squared errors are
weighted by 1 or alpha (`weighting_alpha`), so that the better joint actions dominate the projection:
    OW-QMIX: 1 where Q_tot < y (QMIX underestimates), else alpha;
    CW-QMIX: 1 where the joint action taken is QMIX's greedy one, or y > Q-hat*(s, u-hat) with u-hat that
             greedy joint action (valued by the target Q-hat*, as in the authors' code), else alpha.
Acting stays decentralised: the QMIX agents act; Q-hat* is for training only.

A member of the value-decomposition family: it overrides the loss's parts (chosen values, targets, TD
loss) and nothing else. Axes: B episodes, T steps, N agents, A actions.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from qmix.algorithms.value_decomposition import targets as td
from qmix.algorithms.value_decomposition.algorithm import ChosenValues, ValueDecomposition
from qmix.algorithms.weighted_qmix.central import CentralMixer
from qmix.algorithms.weighted_qmix.weights import central_weights, optimistic_weights
from qmix.episodes import EnvSpec, Episodes
from qmix.nets.agent import make_agent
from qmix.nets.mixers import MixerInput


@struct.dataclass
class WeightedParams:
    agent: Any  # QMIX's agent network: the one that acts
    mixer: Any  # QMIX's monotonic mixer
    central_agent: Any  # Q-hat*'s agent network
    central_mixer: Any  # Q-hat*'s unrestricted mixer


@struct.dataclass
class WeightedValues(ChosenValues):
    """ChosenValues plus Q-hat*'s: central_q_tot [B, T, 1] of the actions taken (online); greedy_actions
    [B, T+1, N], QMIX's greedy joint action in every slot; greedy_central_value [B, T+1, 1], the target
    Q-hat*'s value of it (the bootstrap of the targets, and CW's comparison)."""

    central_q_tot: jax.Array
    greedy_actions: jax.Array
    greedy_central_value: jax.Array


class WeightedQMIX(ValueDecomposition):
    """QMIX with Q-hat* beside it; subclasses choose the weighting."""

    def __init__(self, settings, spec: EnvSpec):
        super().__init__(settings, spec, mixer="qmix")
        self.central_agent = make_agent(settings.agent, spec.n_actions, settings.central_agent_hidden_dim)
        self.central_mixer = CentralMixer(settings.central_mixing_embed_dim)

    def init(self, key: jax.Array):
        qmix_key, agent_key, mixer_key = jax.random.split(key, 3)
        state = super().init(qmix_key)
        n = self.spec.n_agents
        central_agent = self.central_agent.init(agent_key, jnp.zeros((n, self.central_agent.hidden_dim)),
                                                jnp.zeros((n, self.input_dim)))
        central_mixer = self.central_mixer.init(mixer_key, self.example_mixer_input())
        params = WeightedParams(state.params.agent, state.params.mixer, central_agent, central_mixer)
        return state.replace(params=params, target_params=params, opt_state=self.optimizer.init(params))

    # ----- the loss's parts -----
    def chosen_values(self, params: WeightedParams, target_params: WeightedParams, batch: Episodes) -> WeightedValues:
        values = super().chosen_values(params, target_params, batch)
        states = values.states
        central_q = self.unroll(params.central_agent, batch, self.central_agent)  # [B, T+1, N, A]
        taken = MixerInput(td.value_of_actions(central_q[:, :-1], batch.actions), central_q[:, :-1], batch.actions,
                           states[:, :-1], batch.avail[:, :-1])
        central_q_tot = self.central_mixer.apply(params.central_mixer, taken)  # [B, T, 1]
        greedy = td.masked_argmax(jax.lax.stop_gradient(values.q), batch.avail).astype(jnp.int32)  # [B, T+1, N]
        target_central_q = self.unroll(target_params.central_agent, batch, self.central_agent)
        at_greedy = MixerInput(td.value_of_actions(target_central_q, greedy), target_central_q, greedy, states, batch.avail)
        greedy_value = jax.lax.stop_gradient(self.central_mixer.apply(target_params.central_mixer, at_greedy))
        return WeightedValues(values.q, values.target_q, states, values.q_tot, central_q_tot, greedy, greedy_value)

    def targets(self, values: WeightedValues, target_params: WeightedParams, batch: Episodes):
        """y from the target Q-hat* at QMIX's greedy joint action in each next slot: -> y [B, T, 1], metrics."""
        y = self.returns(batch, values.greedy_central_value[:, 1:])
        return y, {}

    def weights(self, values: WeightedValues, y: jax.Array, batch: Episodes) -> jax.Array:
        """Each step's weight on QMIX's squared error: -> [B, T, 1] of 1 or alpha."""
        raise NotImplementedError

    def td_loss(self, values: WeightedValues, y: jax.Array, batch: Episodes):
        """The weighted QMIX loss plus Q-hat*'s unweighted one (both over real steps, each divided by their
        number): -> loss, metrics (each part, and the mean weight over real steps)."""
        w = self.weights(values, y, batch)
        qmix_loss = td.masked_td_loss(values.q_tot, y, batch.filled, w)
        central_loss = td.masked_td_loss(values.central_q_tot, y, batch.filled)
        _, metrics = super().td_loss(values, y, batch)
        real = batch.filled[..., None].astype(w.dtype)
        weight_mean = (w * real).sum() / jnp.maximum(real.sum(), 1.0)
        loss = qmix_loss + central_loss
        return loss, {**metrics, "loss": loss, "qmix_loss": qmix_loss, "central_loss": central_loss,
                      "weight_mean": weight_mean}


class CentrallyWeightedQMIX(WeightedQMIX):
    def weights(self, values, y, batch):
        return central_weights(batch.actions, values.greedy_actions[:, :-1], y, values.greedy_central_value[:, :-1],
                               self.settings.weighting_alpha)


class OptimisticallyWeightedQMIX(WeightedQMIX):
    def weights(self, values, y, batch):
        return optimistic_weights(values.q_tot, y, self.settings.weighting_alpha)
