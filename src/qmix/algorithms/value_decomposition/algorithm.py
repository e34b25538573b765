"""Value decomposition (QMIX, VDN, IQL, QMIX-NS, QMIX-Lin, VDN-S): one loss over a mixer registry.

Agents share one network and act epsilon-greedily on their own observations; a mixer combines their
chosen utilities, conditioned on the state, into Q_tot, trained towards (TD(lambda) or one-step) targets
of target networks (Rashid et al., 2018, section 4). The mixer is the only difference between the
family's members (nets/mixers.py).

Axes: B episodes, T steps, N agents, A actions, K mixer outputs (1, or N for IQL).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import struct

from qmix.algorithms.value_decomposition import targets as td
from qmix.algorithms.value_decomposition.acting import EpsilonGreedyAgents, Params, Policy, unroll_resetting
from qmix.algorithms.value_decomposition.settings import ValueDecompositionSettings
from qmix.episodes import EnvSpec, Episodes, PackedEpisodes, previous_actions
from qmix.nets.agent import agent_input_dim, build_agent_inputs, make_agent
from qmix.nets.mixers import MIXERS, MixerInput
from qmix.packing import pack_episodes, row_counts, rows_that_fit


@struct.dataclass
class ValueDecompositionState:
    params: Params
    target_params: Params
    opt_state: Any
    last_target_update_episode: jax.Array  # [] int32, the episode count at the last hard target copy
    average_agent: Any = None  # moving average of params.agent (average_policy=true), else None


@struct.dataclass
class ChosenValues:
    """What the loss's parts share: q, target_q [B, T+1, N, A] (every slot's utilities, online and target
    networks), states [B, T+1, S'] (what the mixer sees) and q_tot [B, T, K] (Q_tot of the actions taken)."""

    q: jax.Array
    target_q: jax.Array
    states: jax.Array
    q_tot: jax.Array


def make_optimizer(s: ValueDecompositionSettings) -> optax.GradientTransformation:
    if s.lr_schedule == "linear":
        lr = optax.linear_schedule(s.lr, s.lr_finish, s.lr_anneal_updates)
    else:
        lr = optax.constant_schedule(s.lr)
    if s.optimizer == "rmsprop":
        # PyTorch's RMSprop (PyMARL): eps added outside the square root.
        opt = optax.rmsprop(lr, decay=s.rmsprop_alpha, eps=s.rmsprop_eps, eps_in_sqrt=False)
    else:
        opt = optax.adam(lr, eps=s.adam_eps)
    if s.grad_norm_clip is not None:
        opt = optax.chain(optax.clip_by_global_norm(s.grad_norm_clip), opt)
    return opt


class ValueDecomposition(EpsilonGreedyAgents):
    """All methods are pure and jit-safe; `mixer` names an entry of the mixer registry."""

    uses_replay = True

    def __init__(self, settings: ValueDecompositionSettings, spec: EnvSpec, mixer: str):
        self.settings = settings
        self.spec = spec
        self.mixer_name = mixer
        self.agent = make_agent(settings.agent, spec.n_actions, settings.agent_hidden_dim)
        self.mixer = MIXERS.get(mixer)(settings)
        self.optimizer = make_optimizer(settings)
        self.input_dim = agent_input_dim(spec.obs_dim, spec.n_agents, spec.n_actions, settings.obs_last_action,
                                         settings.obs_agent_id)
        extra = spec.n_agents * spec.n_actions if settings.state_last_action else 0
        self.mixer_state_dim = spec.state_dim + extra

    # ----- state -----
    def init(self, key: jax.Array) -> ValueDecompositionState:
        params = self.init_params(key)
        return ValueDecompositionState(
            params=params,
            target_params=params,
            opt_state=self.optimizer.init(params),
            last_target_update_episode=jnp.zeros((), jnp.int32),
            average_agent=params.agent if self.settings.average_policy else None,
        )

    def example_item(self) -> Episodes:
        return Episodes.empty(self.spec)

    # ----- acting (acting.py), and the averaged policy's test -----
    def test_policies(self, state: ValueDecompositionState) -> dict[str, Policy]:
        policies = {"": self.greedy(state.params.agent)}
        if self.settings.average_policy:  # the same test games: a paired comparison with the online one
            policies["averaged"] = self.greedy(state.average_agent)
        return policies

    # ----- learning -----
    def unroll(self, agent_params, episodes: Episodes, agent=None) -> jax.Array:
        """Q-values of every slot of whole episodes: -> [B, T+1, N, A], from the agent network (or another
        network over the same inputs, e.g. a family member's second one). The hidden state starts at zero in
        slot 0 of a whole episode, and of every episode packed into a row (packing.py)."""
        s = self.settings
        agent = agent or self.agent
        inputs = build_agent_inputs(episodes.obs, previous_actions(episodes), self.spec.n_actions,
                                    s.obs_last_action, s.obs_agent_id)  # [B, T+1, N, D]

        hidden = jnp.zeros((episodes.obs.shape[0], self.spec.n_agents, agent.hidden_dim))
        starts = episodes.starts if isinstance(episodes, PackedEpisodes) else None  # packed: several per row
        return unroll_resetting(agent, agent_params, hidden, inputs, starts)

    def mixer_states(self, episodes: Episodes) -> jax.Array:
        """What the mixer sees in each slot: the state [B, T+1, S], and with state_last_action every agent's
        previous action one-hot after it ([B, T+1, S + N*A]; none yet in slot 0: zeros)."""
        if not self.settings.state_last_action:
            return episodes.state
        last_actions = previous_actions(episodes)  # [B, T+1, N]
        one_hot = jax.nn.one_hot(last_actions, self.spec.n_actions)  # [B, T+1, N, A]; -1 gives zeros
        return jnp.concatenate([episodes.state, one_hot.reshape(*last_actions.shape[:2], -1)], axis=-1)

    def loss(self, params: Params, target_params: Params, batch: Episodes):
        """The TD loss of a batch of whole episodes, in three parts a family member may override one by one:
        the values of what was done, their targets, and the loss between them. -> loss, metrics."""
        values = self.chosen_values(params, target_params, batch)
        y, target_metrics = self.targets(values, target_params, batch)
        loss, loss_metrics = self.td_loss(values, y, batch)
        return loss, {**loss_metrics, **target_metrics}

    def chosen_values(self, params: Params, target_params: Params, batch: Episodes) -> ChosenValues:
        """Every slot's agent utilities (online and target networks) and Q_tot of the actions taken."""
        q = self.unroll(params.agent, batch)  # [B, T+1, N, A]
        target_q = jax.lax.stop_gradient(self.unroll(target_params.agent, batch))
        q_taken = td.value_of_actions(q[:, :-1], batch.actions)  # [B, T, N]
        states = self.mixer_states(batch)  # [B, T+1, S']
        taken = MixerInput(q_taken, q[:, :-1], batch.actions, states[:, :-1], batch.avail[:, :-1])
        return ChosenValues(q, target_q, states, self.mixer.apply(params.mixer, taken))

    def targets(self, values: ChosenValues, target_params: Params, batch: Episodes):
        """(TD(lambda) or one-step) targets from the target mixer over the next slots' selected actions
        (double Q: the online network selects, the target network values): -> y [B, T, K], metrics."""
        s = self.settings
        q, target_q, states = values.q, values.target_q, values.states
        avail_next = batch.avail[:, 1:]
        next_q = td.next_agent_values(target_q[:, 1:], q[:, 1:], avail_next, s.double_q)  # [B, T, N]
        next_actions = td.next_agent_actions(target_q[:, 1:], q[:, 1:], avail_next, s.double_q)
        next_input = MixerInput(next_q, target_q[:, 1:], next_actions, states[:, 1:], avail_next)
        next_q_tot = jax.lax.stop_gradient(self.mixer.apply(target_params.mixer, next_input))  # [B, T, K]
        return self.returns(batch, next_q_tot), {}

    def returns(self, batch: Episodes, next_values: jax.Array) -> jax.Array:
        """The TD(lambda) (or, with td_lambda 0, one-step) targets of a batch, bootstrapping from the value
        of each next slot: next_values [B, T, K] -> y [B, T, K]."""
        s = self.settings
        rewards = batch.rewards * s.reward_scale  # [B, T]
        if s.td_lambda > 0:
            return td.lambda_targets(rewards, batch.terminated, batch.filled, next_values, s.gamma, s.td_lambda)
        return td.one_step_targets(rewards, batch.terminated, next_values, s.gamma)

    def td_loss(self, values: ChosenValues, y: jax.Array, batch: Episodes):
        """The mean squared TD error over real steps: -> loss, metrics (the loss, Q_tot's mean over real steps)."""
        q_tot = values.q_tot
        loss = td.masked_td_loss(q_tot, y, batch.filled)
        mask = batch.filled[..., None].astype(q_tot.dtype)
        q_taken_mean = (q_tot * mask).sum() / jnp.maximum(mask.sum() * q_tot.shape[-1], 1.0)
        return loss, {"loss": loss, "q_taken_mean": q_taken_mean}

    def update(self, state: ValueDecompositionState, batch: Episodes, key: jax.Array, axis_name: str | None = None):
        """One gradient step on a batch of whole episodes (the key is not needed: the batch was sampled).

        Episodes are padded to the episode limit but are often much shorter, and the unroll costs the
        same per step whether the step is real or padding. So the batch's episodes are packed one after
        another into the fewest rows of a few fixed counts (`time_buckets` of them, packing.py) that hold
        them: a handful of compiled variants, one chosen at run time, the same loss. Under a vmap over
        seeds (`axis_name`), the seeds agree on one count so the choice stays a real branch rather than
        all of them.
        """
        episodes = batch.filled.shape[0]
        # episodes that always fill the limit leave no padding to pack away: one row each, one variant
        counts = [episodes] if self.spec.fills_the_limit else row_counts(episodes, self.settings.time_buckets)
        fits = rows_that_fit(batch.filled.sum(axis=1, dtype=jnp.int32), counts, self.spec.episode_limit + 1)
        index = jnp.argmax(fits)  # the fewest rows that fit (the last count, one row per episode, always does)
        if axis_name is not None:
            index = jax.lax.pmax(index, axis_name)
        branches = [lambda st, b, rows=rows: self._update(st, pack_episodes(b, rows)) for rows in counts]
        state, metrics = jax.lax.switch(index, branches, state, batch)
        return state, metrics, jnp.ones((), jnp.int32)

    def _update(self, state: ValueDecompositionState, batch: Episodes):
        s = self.settings
        (_, metrics), grads = jax.value_and_grad(self.loss, has_aux=True)(state.params, state.target_params, batch)
        updates, opt_state = self.optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        target_params = state.target_params
        if s.target_update == "soft":
            target_params = optax.incremental_update(params, target_params, s.target_update_tau)
        average = state.average_agent
        if s.average_policy:
            average = optax.incremental_update(params.agent, average, s.policy_average_tau)
        new_state = state.replace(params=params, target_params=target_params, opt_state=opt_state,
                                  average_agent=average)
        return new_state, {**metrics, "grad_norm": optax.global_norm(grads)}

    def after_iteration(self, state: ValueDecompositionState, episodes: jax.Array) -> ValueDecompositionState:
        """Hard target updates: copy the online networks every target_update_interval_episodes episodes."""
        if self.settings.target_update != "hard":
            return state  # soft updates happen inside every learner update
        due = episodes - state.last_target_update_episode >= self.settings.target_update_interval_episodes
        return state.replace(
            target_params=jax.tree.map(lambda new, old: jnp.where(due, new, old), state.params, state.target_params),
            last_target_update_episode=jnp.where(due, episodes, state.last_target_update_episode),
        )

    # ----- what a finished run keeps -----
    def saved_parameters(self, state: ValueDecompositionState) -> dict[str, Any]:
        saved = {"params": state.params}
        if self.settings.average_policy:
            saved["averaged_agent"] = state.average_agent
        return saved
