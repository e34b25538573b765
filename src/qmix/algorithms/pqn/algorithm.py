"""PQN-style value decomposition (PQN-VDN, PQN-QMIX): Gallici et al., "Simplifying Deep Temporal
Difference Learning" (ICLR 2025), with a value-decomposition mixer.

Many environments are stepped side by side for `rollout_steps` steps (step-based collection, no replay);
then `epochs` passes of `minibatches` shuffled minibatches of whole environment rows learn from that
rollout alone. There is no target network: LayerNorm in the networks keeps TD learning stable, and the
Q(lambda) targets come from the online networks' own values, computed in the same pass as the values they
train (with no gradient through them). The agents act epsilon-greedily as the replay-based family does.

Axes: B environment rows, L steps (L+1 slots), N agents, A actions, K mixer outputs.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import struct

from qmix.algorithms.pqn.settings import PQNSettings
from qmix.algorithms.value_decomposition import targets as td
from qmix.algorithms.value_decomposition.acting import (
    EpsilonGreedyAgents,
    Params,
    linear_anneal,
    unroll_resetting,
)
from qmix.episodes import EnvSpec, Episodes
from qmix.nets.agent import agent_input_dim, build_agent_inputs, make_agent
from qmix.nets.mixers import MIXERS, MixerInput
from qmix.step_rollouts import StepRollout, previous_actions_across_starts


@struct.dataclass
class PQNState:
    params: Params
    opt_state: Any
    env_steps: jax.Array  # [] int32, env steps learned from so far (the step size's schedule)


class PQN(EpsilonGreedyAgents):
    """All methods are pure and jit-safe; `mixer` names an entry of the mixer registry."""

    uses_replay = False

    def __init__(self, settings: PQNSettings, spec: EnvSpec, mixer: str):
        self.settings = settings
        self.spec = spec
        self.rollout_steps = settings.rollout_steps  # the loop collects steps, not whole episodes
        self.agent = make_agent(settings.agent, spec.n_actions, settings.agent_hidden_dim)
        self.mixer = MIXERS.get(mixer)(settings)
        self.input_dim = agent_input_dim(spec.obs_dim, spec.n_agents, spec.n_actions, settings.obs_last_action,
                                         settings.obs_agent_id)
        self.mixer_state_dim = spec.state_dim
        clip = [optax.clip_by_global_norm(settings.grad_norm_clip)] if settings.grad_norm_clip is not None else []
        scale = optax.scale_by_radam() if settings.optimizer == "radam" else optax.scale_by_adam()
        self.optimizer = optax.chain(*clip, scale)  # the step size is applied in `_gradient_step` (its schedule)

    # ----- state -----
    def init(self, key: jax.Array) -> PQNState:
        params = self.init_params(key)
        return PQNState(params, self.optimizer.init(params), jnp.zeros((), jnp.int32))

    def example_item(self) -> StepRollout:
        """One environment's rollout (zeros): what `update` gets a batch of."""
        steps = Episodes.empty(dataclasses.replace(self.spec, episode_limit=self.rollout_steps))
        first_state = jax.tree.map(lambda x: x[0], self.initial_actor_state(1))
        return StepRollout(steps, jnp.zeros((self.rollout_steps + 1,), bool), first_state)

    def learning_rate(self, env_steps: jax.Array) -> jax.Array:
        s = self.settings
        if s.lr_anneal_env_steps == 0:
            return jnp.asarray(s.lr, jnp.float32)
        return linear_anneal(s.lr, 0.0, s.lr_anneal_env_steps, env_steps)

    # ----- learning -----
    def unroll(self, agent_params, rollout: StepRollout) -> jax.Array:
        """Q-values of every slot of the rows: -> [B, L+1, N, A]. The hidden state enters slot 0 as acting
        left it and resets to zero wherever an episode starts, as it did while acting."""
        s = self.settings
        hidden, first_previous = rollout.actor_state  # [B, N, H], [B, N]
        previous = previous_actions_across_starts(rollout, first_previous)
        inputs = build_agent_inputs(rollout.steps.obs, previous, self.spec.n_actions, s.obs_last_action,
                                    s.obs_agent_id)  # [B, L+1, N, D]
        return unroll_resetting(self.agent, agent_params, hidden, inputs, rollout.starts)

    def loss(self, params: Params, rollout: StepRollout):
        """The mean squared TD error over real steps between Q_tot of the actions taken and Q(lambda)
        targets bootstrapping from the same pass's Q_tot of the greedy available actions: -> loss, metrics."""
        s, batch = self.settings, rollout.steps
        q = self.unroll(params.agent, rollout)  # [B, L+1, N, A]
        taken = MixerInput(td.value_of_actions(q[:, :-1], batch.actions), q[:, :-1], batch.actions,
                           batch.state[:, :-1], batch.avail[:, :-1])
        q_tot = self.mixer.apply(params.mixer, taken)  # [B, L, K]
        values = jax.lax.stop_gradient(q)
        avail_next = batch.avail[:, 1:]
        greedy = MixerInput(td.masked_max(values[:, 1:], avail_next), values[:, 1:],
                            td.masked_argmax(values[:, 1:], avail_next).astype(jnp.int32), batch.state[:, 1:],
                            avail_next)
        next_q_tot = jax.lax.stop_gradient(self.mixer.apply(params.mixer, greedy))  # [B, L, K]
        rewards = batch.rewards * s.reward_scale  # [B, L]
        y = td.lambda_targets(rewards, batch.terminated, batch.filled, next_q_tot, s.gamma, s.q_lambda)
        loss = td.masked_td_loss(q_tot, y, batch.filled)
        mask = batch.filled[..., None].astype(q_tot.dtype)
        q_taken_mean = (q_tot * mask).sum() / jnp.maximum(mask.sum() * q_tot.shape[-1], 1.0)
        return loss, {"loss": loss, "q_taken_mean": q_taken_mean}

    def update(self, state: PQNState, batch: StepRollout, key: jax.Array, axis_name: str | None = None):
        """`epochs` passes over the rollout's E rows, each in `minibatches` shuffled minibatches of whole
        rows: epochs * minibatches gradient steps. The metrics are their means."""
        s = self.settings
        n_rows = batch.starts.shape[0]
        orders = jax.vmap(lambda k: jax.random.permutation(k, n_rows))(jax.random.split(key, s.epochs))
        minibatch_rows = orders.reshape(s.epochs * s.minibatches, n_rows // s.minibatches)
        lr = self.learning_rate(state.env_steps)

        def gradient_step(carry, rows):
            params, opt_state = carry
            minibatch = jax.tree.map(lambda x: x[rows], batch)
            (_, metrics), grads = jax.value_and_grad(self.loss, has_aux=True)(params, minibatch)
            updates, opt_state = self.optimizer.update(grads, opt_state, params)
            params = optax.apply_updates(params, jax.tree.map(lambda u: -lr * u, updates))
            return (params, opt_state), {**metrics, "grad_norm": optax.global_norm(grads)}

        (params, opt_state), metrics = jax.lax.scan(gradient_step, (state.params, state.opt_state), minibatch_rows)
        learned = state.env_steps + batch.steps.filled.sum(dtype=jnp.int32)
        metrics = {**jax.tree.map(jnp.mean, metrics), "lr": lr}
        return PQNState(params, opt_state, learned), metrics, jnp.asarray(s.epochs * s.minibatches, jnp.int32)

    def after_iteration(self, state: PQNState, episodes: jax.Array) -> PQNState:
        return state  # no target network, no replay: nothing between iterations
