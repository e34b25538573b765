"""The QMIX learner: one loss and one update for every algorithm of the mixer registry.

Axes: B episodes, T steps, N agents, A actions, K mixer outputs (1, or N for IQL).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax import struct

from qmix.config import Config
from qmix.learn import targets as td
from qmix.nets.agent import agent_input_dim, build_agent_inputs, make_agent
from qmix.nets.mixers import make_mixer


@struct.dataclass
class Episodes:
    """Whole episodes, padded to the environment's episode limit T.

    obs [.., T+1, N, O], state [.., T+1, S], avail [.., T+1, N, A] bool: what was seen in each slot;
    actions [.., T, N] int32, rewards [.., T], terminated / truncated / filled [.., T] bool: each step.
    """

    obs: jax.Array
    state: jax.Array
    avail: jax.Array
    actions: jax.Array
    rewards: jax.Array
    terminated: jax.Array
    truncated: jax.Array
    filled: jax.Array


@struct.dataclass
class Params:
    agent: Any
    mixer: Any


@struct.dataclass
class LearnerState:
    params: Params
    target_params: Params
    opt_state: Any
    updates: jax.Array  # learner updates done so far


@struct.dataclass
class AveragingLearnerState(LearnerState):
    """The state with policy_average_tau > 0. A subclass, not an optional field, so that runs without
    averaging keep the exact tree that their checkpoints (and those of earlier versions) hold."""

    average_agent: Any  # exponential moving average of params.agent


@dataclass(frozen=True)
class EnvSpec:
    n_agents: int
    n_actions: int
    obs_dim: int
    state_dim: int
    episode_limit: int

    @classmethod
    def of(cls, env) -> EnvSpec:
        return cls(env.n_agents, env.n_actions, env.obs_dim, env.state_dim, env.episode_limit)


def previous_actions(episodes: Episodes) -> jax.Array:
    """[B, T+1, N]: the action each agent took before each slot; -1 (none) in slot 0."""
    no_action = -jnp.ones_like(episodes.actions[:, :1])  # [B, 1, N]
    return jnp.concatenate([no_action, episodes.actions], axis=1)


def time_buckets(episode_limit: int, count: int) -> list[int]:
    """The lengths a batch may be cut to: `count` evenly spaced steps up to the episode limit."""
    count = max(1, min(count, episode_limit))
    return sorted({-(-episode_limit * (i + 1) // count) for i in range(count)})


def truncate_episodes(batch: Episodes, steps: int) -> Episodes:
    """Keep the first `steps` steps (and `steps + 1` slots) of every episode in the batch."""
    return Episodes(
        obs=batch.obs[:, : steps + 1],
        state=batch.state[:, : steps + 1],
        avail=batch.avail[:, : steps + 1],
        actions=batch.actions[:, :steps],
        rewards=batch.rewards[:, :steps],
        terminated=batch.terminated[:, :steps],
        truncated=batch.truncated[:, :steps],
        filled=batch.filled[:, :steps],
    )


def learning_rate(config: Config) -> float | optax.Schedule:
    """The step size: constant, or falling linearly from lr to lr_finish over lr_anneal_updates updates."""
    if config.lr_anneal_updates == 0:
        return config.lr  # a plain number keeps the optimizer state of constant-step runs as it always was
    return optax.linear_schedule(config.lr, config.lr_finish, config.lr_anneal_updates)


def make_optimizer(config: Config) -> optax.GradientTransformation:
    lr = learning_rate(config)
    if config.optimizer == "rmsprop":
        # PyTorch's RMSprop (PyMARL): eps added outside the square root.
        opt = optax.rmsprop(lr, decay=config.rmsprop_alpha, eps=config.rmsprop_eps, eps_in_sqrt=False)
    else:
        opt = optax.adam(lr, eps=config.adam_eps)
    if config.grad_norm_clip > 0:
        opt = optax.chain(optax.clip_by_global_norm(config.grad_norm_clip), opt)
    return opt


class Learner:
    """Holds the networks and settings; all methods are pure and jit-safe."""

    def __init__(self, config: Config, spec: EnvSpec):
        self.config = config
        self.spec = spec
        self.agent: nn.Module = make_agent(config.agent, spec.n_actions, config.agent_hidden_dim)
        self.mixer: nn.Module = make_mixer(
            config.mixer, config.mixing_embed_dim, config.hypernet_layers, config.hypernet_embed_dim
        )
        self.optimizer = make_optimizer(config)
        self.input_dim = agent_input_dim(
            spec.obs_dim, spec.n_agents, spec.n_actions, config.obs_last_action, config.obs_agent_id
        )
        self.mixer_state_dim = spec.state_dim + (spec.n_agents * spec.n_actions if config.state_last_action else 0)

    # ----- networks -----
    def init(self, key: jax.Array) -> LearnerState:
        agent_key, mixer_key = jax.random.split(key)
        n, hidden = self.spec.n_agents, self.config.agent_hidden_dim
        agent_params = self.agent.init(agent_key, jnp.zeros((n, hidden)), jnp.zeros((n, self.input_dim)))
        mixer_params = self.mixer.init(mixer_key, jnp.zeros((n,)), jnp.zeros((self.mixer_state_dim,)))
        params = Params(agent_params, mixer_params)
        state = LearnerState(
            params=params,
            target_params=params,
            opt_state=self.optimizer.init(params),
            updates=jnp.zeros((), jnp.int32),
        )
        if self.config.policy_average_tau > 0:
            return AveragingLearnerState(**vars(state), average_agent=agent_params)
        return state

    def initial_hidden(self, *batch: int) -> jax.Array:
        return jnp.zeros((*batch, self.spec.n_agents, self.config.agent_hidden_dim))

    def agent_inputs(self, obs: jax.Array, last_actions: jax.Array) -> jax.Array:
        return build_agent_inputs(
            obs, last_actions, self.spec.n_actions, self.config.obs_last_action, self.config.obs_agent_id
        )

    def act_values(self, agent_params, hidden, obs, last_actions):
        """One decentralised step: obs [..., N, O], last_actions [..., N] -> hidden, q [..., N, A]."""
        return self.agent.apply(agent_params, hidden, self.agent_inputs(obs, last_actions))

    def unroll(self, agent_params, episodes: Episodes) -> jax.Array:
        """Q-values of every slot of whole episodes: -> [B, T+1, N, A].

        The hidden state starts at zero at slot 0: each stored item is one whole episode, so that is the
        only place the RNN resets.
        """
        batch = episodes.obs.shape[0]
        inputs = self.agent_inputs(episodes.obs, previous_actions(episodes))  # [B, T+1, N, D]

        def step(hidden, x):
            hidden, q = self.agent.apply(agent_params, hidden, x)
            return hidden, q

        _, q = jax.lax.scan(step, self.initial_hidden(batch), jnp.swapaxes(inputs, 0, 1))
        return jnp.swapaxes(q, 0, 1)

    def mixer_states(self, episodes: Episodes) -> jax.Array:
        """What the mixer sees in each slot: the state [B, T+1, S], and with state_last_action every agent's
        previous action one-hot after it ([B, T+1, S + N*A]; none yet in slot 0: zeros)."""
        if not self.config.state_last_action:
            return episodes.state
        last_actions = previous_actions(episodes)  # [B, T+1, N]
        one_hot = jax.nn.one_hot(last_actions, self.spec.n_actions)  # [B, T+1, N, A]; -1 gives zeros
        return jnp.concatenate([episodes.state, one_hot.reshape(*last_actions.shape[:2], -1)], axis=-1)

    # ----- loss and update -----
    def loss(self, params: Params, target_params: Params, batch: Episodes):
        c = self.config
        q = self.unroll(params.agent, batch)  # [B, T+1, N, A]
        target_q = jax.lax.stop_gradient(self.unroll(target_params.agent, batch))
        q_taken = jnp.take_along_axis(q[:, :-1], batch.actions[..., None], axis=-1)[..., 0]  # [B, T, N]
        states = self.mixer_states(batch)  # [B, T+1, S']
        q_tot = self.mixer.apply(params.mixer, q_taken, states[:, :-1])  # [B, T, K]

        next_q = td.next_agent_values(target_q[:, 1:], q[:, 1:], batch.avail[:, 1:], c.double_q)  # [B, T, N]
        next_q_tot = self.mixer.apply(target_params.mixer, next_q, states[:, 1:])  # [B, T, K]
        next_q_tot = jax.lax.stop_gradient(next_q_tot)
        if c.td_lambda > 0:
            y = td.lambda_targets(batch.rewards, batch.terminated, batch.filled, next_q_tot, c.gamma, c.td_lambda)
        else:
            y = td.one_step_targets(batch.rewards, batch.terminated, next_q_tot, c.gamma)
        loss = td.masked_td_loss(q_tot, y, batch.filled)
        mask = batch.filled[..., None].astype(q_tot.dtype)
        denom = jnp.maximum(mask.sum() * q_tot.shape[-1], 1.0)
        aux = {"q_taken_mean": (q_tot * mask).sum() / denom, "target_mean": (y * mask).sum() / denom}
        return loss, aux

    def update(
        self, state: LearnerState, batch: Episodes, axis_name: str | None = None
    ) -> tuple[LearnerState, dict[str, jax.Array]]:
        """One gradient step on a batch of whole episodes.

        Episodes are padded to the episode limit but are often much shorter, and the unroll costs the
        same per step whether the step is real or padding. So the batch is cut to the shortest of a few
        fixed lengths (`time_buckets`) that still holds its longest episode: a handful of compiled
        variants, one chosen at run time, the same result. Under a vmap over seeds (`axis_name`), the
        seeds agree on one length so the choice stays a real branch rather than all of them.
        """
        buckets = time_buckets(self.spec.episode_limit, self.config.time_buckets)
        if len(buckets) == 1:
            return self._update(state, batch)
        longest = batch.filled.sum(axis=1).max()
        if axis_name is not None:
            longest = jax.lax.pmax(longest, axis_name)
        index = jnp.searchsorted(jnp.asarray(buckets), longest)
        branches = [lambda s, b, steps=steps: self._update(s, truncate_episodes(b, steps)) for steps in buckets]
        return jax.lax.switch(index, branches, state, batch)

    def _update(self, state: LearnerState, batch: Episodes) -> tuple[LearnerState, dict[str, jax.Array]]:
        (loss, aux), grads = jax.value_and_grad(self.loss, has_aux=True)(state.params, state.target_params, batch)
        updates, opt_state = self.optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        target_params = state.target_params
        if self.config.target_update_tau > 0:
            target_params = optax.incremental_update(params, target_params, self.config.target_update_tau)
        new_state = state.replace(
            params=params, target_params=target_params, opt_state=opt_state, updates=state.updates + 1
        )
        if self.config.policy_average_tau > 0:
            average = optax.incremental_update(params.agent, state.average_agent, self.config.policy_average_tau)
            new_state = new_state.replace(average_agent=average)
        metrics = {"loss": loss, "grad_norm": optax.global_norm(grads), **aux}
        return new_state, metrics

    def hard_target_update(self, state: LearnerState) -> LearnerState:
        return state.replace(target_params=state.params)
