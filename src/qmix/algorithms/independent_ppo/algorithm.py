"""Independent PPO (IPPO; de Witt et al., 2020, "Is independent learning all you need in the StarCraft
multi-agent challenge?"): each agent acts with a stochastic policy on its own observation history and
is valued by a critic of that same history; both networks are shared across agents. On-policy: every
iteration's episodes are learned from for `epochs` passes of `minibatches` minibatches of whole
episodes with PPO's clipped objective (Schulman et al., 2017), then dropped.

Unlike value decomposition there is no mixer, no replay and no target network: the protocol's other
family, and the template for actor-critic methods.

Axes: B episodes, T steps, N agents, A actions, H hidden units.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import struct

from qmix.algorithms.independent_ppo.advantages import gae
from qmix.algorithms.independent_ppo.settings import IndependentPPOSettings
from qmix.algorithms.recurrent_actors import HistoryInputs, draw
from qmix.algorithms.value_decomposition.targets import value_of_actions
from qmix.episodes import EnvSpec, Episodes
from qmix.nets.agent import agent_input_dim, make_agent


@struct.dataclass
class Params:
    actor: Any  # logits over actions, per agent
    critic: Any  # V of the agent's own history


@struct.dataclass
class PPOState:
    params: Params
    opt_state: Any


@struct.dataclass
class Policy:
    actor: Any  # actor parameters
    greedy: jax.Array  # [] bool: the most probable available action instead of a sample


@struct.dataclass
class Rollout:
    """What every pass over an iteration's episodes shares, computed once before the first:
    old_log_probs [B, T, N] of the actions taken, advantages and returns [B, T, N]."""

    old_log_probs: jax.Array
    advantages: jax.Array
    returns: jax.Array


UNAVAILABLE_LOGIT = -1e9  # finite: an unavailable action's probability is exactly 0, and no ratio,
# entropy term or gradient through it becomes NaN (as -inf would: -inf - -inf, 0 * -inf)


def masked_log_policy(logits: jax.Array, avail: jax.Array) -> jax.Array:
    """log pi over available actions only: logits, avail [..., A] -> [..., A] (probability 0 where
    unavailable; a slot with no available action, i.e. padding, gets a uniform policy)."""
    any_avail = avail.any(axis=-1, keepdims=True)
    return jax.nn.log_softmax(jnp.where(avail | ~any_avail, logits, UNAVAILABLE_LOGIT), axis=-1)


class IndependentPPO:
    """All methods are pure and jit-safe."""

    uses_replay = False

    def __init__(self, settings: IndependentPPOSettings, spec: EnvSpec):
        self.settings = settings
        self.spec = spec
        self.actor = make_agent(settings.agent, spec.n_actions, settings.agent_hidden_dim)
        self.critic = make_agent(settings.agent, 1, settings.critic_hidden_dim)
        self.histories = HistoryInputs(spec.n_agents, spec.n_actions, settings.obs_last_action, settings.obs_agent_id)
        self.input_dim = agent_input_dim(spec.obs_dim, spec.n_agents, spec.n_actions, settings.obs_last_action,
                                         settings.obs_agent_id)
        clip = [optax.clip_by_global_norm(settings.grad_norm_clip)] if settings.grad_norm_clip is not None else []
        self.optimizer = optax.chain(*clip, optax.adam(settings.lr, eps=settings.adam_eps))

    # ----- state -----
    def init(self, key: jax.Array) -> PPOState:
        actor_key, critic_key = jax.random.split(key)
        n, s = self.spec.n_agents, self.settings
        inputs = jnp.zeros((n, self.input_dim))
        params = Params(self.actor.init(actor_key, jnp.zeros((n, s.agent_hidden_dim)), inputs),
                        self.critic.init(critic_key, jnp.zeros((n, s.critic_hidden_dim)), inputs))
        return PPOState(params, self.optimizer.init(params))

    def example_item(self) -> Episodes:
        return Episodes.empty(self.spec)

    # ----- acting -----
    def acting_policy(self, state: PPOState, env_steps: jax.Array) -> Policy:
        return Policy(state.params.actor, jnp.zeros((), bool))

    def greedy(self, actor_params) -> Policy:
        return Policy(actor_params, jnp.ones((), bool))

    def test_policies(self, state: PPOState) -> dict[str, Policy]:
        return {"": self.greedy(state.params.actor)}

    def initial_actor_state(self, n_envs: int) -> tuple[jax.Array, jax.Array]:
        """(actor hidden state [E, N, H], previous actions [E, N], -1: none yet)."""
        return self.histories.initial_state(n_envs, self.settings.agent_hidden_dim)

    def act(self, policy: Policy, actor_state, key, obs, avail):
        hidden, logits = self.histories.step(self.actor, policy.actor, actor_state, obs)  # [E, N, A]
        actions = draw(key, masked_log_policy(logits, avail), policy.greedy)
        return (hidden, actions), actions

    # ----- learning -----
    def log_policy_and_values(self, params: Params, episodes: Episodes) -> tuple[jax.Array, jax.Array]:
        """-> log pi [B, T+1, N, A] over available actions, V [B, T+1, N]."""
        logits = self.histories.unroll(self.actor, params.actor, episodes)
        values = self.histories.unroll(self.critic, params.critic, episodes)[..., 0]
        return masked_log_policy(logits, episodes.avail), values

    def rollout(self, params: Params, episodes: Episodes) -> Rollout:
        """Old log-probabilities, GAE advantages and value targets, from the parameters that collected."""
        log_pi, values = self.log_policy_and_values(params, episodes)
        taken = value_of_actions(log_pi[:, :-1], episodes.actions)
        s = self.settings
        advantages = gae(episodes.rewards, episodes.terminated, episodes.filled, values, s.gamma, s.gae_lambda)
        return Rollout(taken, advantages, advantages + values[:, :-1] * episodes.filled[..., None])

    def loss(self, params: Params, episodes: Episodes, rollout: Rollout):
        """PPO's clipped surrogate + value_coef * squared value error - entropy_coef * entropy, each a mean
        over real (step, agent) pairs: -> loss, metrics."""
        s = self.settings
        log_pi, values = self.log_policy_and_values(params, episodes)
        log_pi, values = log_pi[:, :-1], values[:, :-1]  # [B, T, N, A], [B, T, N]: the steps taken
        mask = jnp.broadcast_to(episodes.filled[..., None], values.shape).astype(values.dtype)
        count = jnp.maximum(mask.sum(), 1.0)
        mean = lambda x: (x * mask).sum() / count  # noqa: E731
        advantages = rollout.advantages
        if s.normalise_advantages:
            centred = advantages - mean(advantages)
            advantages = centred / (jnp.sqrt(mean(centred**2)) + 1e-8)
        taken = value_of_actions(log_pi, episodes.actions)
        taken = jnp.where(mask > 0, taken, rollout.old_log_probs)  # padding steps: ratio 1, never inf
        ratio = jnp.exp(taken - rollout.old_log_probs)
        clipped = jnp.clip(ratio, 1.0 - s.clip_ratio, 1.0 + s.clip_ratio)
        policy_loss = -mean(jnp.minimum(ratio * advantages, clipped * advantages))
        value_loss = mean((values - rollout.returns) ** 2)
        available = episodes.avail[:, :-1]
        entropy = mean(-(jnp.exp(log_pi) * jnp.where(available, log_pi, 0.0)).sum(axis=-1))
        loss = policy_loss + s.value_coef * value_loss - s.entropy_coef * entropy
        return loss, {"policy_loss": policy_loss, "value_loss": value_loss, "entropy": entropy,
                      "clip_fraction": mean((jnp.abs(ratio - 1.0) > s.clip_ratio).astype(values.dtype))}

    def update(self, state: PPOState, batch: Episodes, key: jax.Array, axis_name: str | None = None):
        """`epochs` passes over the iteration's E episodes, each in `minibatches` random minibatches of
        whole episodes: epochs * minibatches gradient steps. The metrics are their means."""
        s = self.settings
        rollout = self.rollout(state.params, batch)
        n_episodes = batch.filled.shape[0]
        size = n_episodes // s.minibatches
        orders = jax.vmap(lambda k: jax.random.permutation(k, n_episodes))(jax.random.split(key, s.epochs))
        minibatch_indices = orders.reshape(s.epochs * s.minibatches, size)  # [epochs * minibatches, E / M]

        def step(carry, indices):
            params, opt_state = carry
            pick = lambda x: x[indices]  # noqa: E731
            (_, metrics), grads = jax.value_and_grad(self.loss, has_aux=True)(
                params, jax.tree.map(pick, batch), jax.tree.map(pick, rollout))
            updates, opt_state = self.optimizer.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), {**metrics, "grad_norm": optax.global_norm(grads)}

        (params, opt_state), metrics = jax.lax.scan(step, (state.params, state.opt_state), minibatch_indices)
        steps = jnp.asarray(s.epochs * s.minibatches, jnp.int32)
        return PPOState(params, opt_state), jax.tree.map(jnp.mean, metrics), steps

    def after_iteration(self, state: PPOState, episodes: jax.Array) -> PPOState:
        return state  # nothing kept between iterations: the episodes are dropped after their update

    def status(self, env_steps: jax.Array) -> dict[str, jax.Array]:
        return {}

    # ----- what a finished run keeps -----
    def saved_parameters(self, state: PPOState) -> dict[str, Any]:
        return {"params": state.params}

    def policy_from_saved(self, name: str, tree: Any) -> Policy:
        return self.greedy(tree.actor)
