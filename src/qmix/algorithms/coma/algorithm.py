"""COMA (Foerster et al., 2018, "Counterfactual Multi-Agent Policy Gradients"): decentralised stochastic
actors, one network shared across agents, trained by policy gradients whose advantage comes from a
centralised critic. For each agent the critic holds the other agents' actions fixed and values every
action of its own, so the advantage compares the action taken with the policy's average over the
agent's alternatives (the counterfactual baseline): the agent's own contribution to the team reward.

On-policy, like IPPO: every iteration's episodes are learned from once, critic first, then actors, and
dropped. The critic is trained towards TD(lambda) targets from a target critic copied every
`target_update_interval_episodes` episodes. Exploration is the authors' epsilon floor on the policy.

Where this differs from the authors' code (PyMARL's coma_learner, basic_controller, coma_smac.yaml):
- the critic takes one step on the whole batch by default (critic_update=sequential: theirs, one step per
  time step, the last first); the target critic is copied every so many collected episodes rather than
  every 200 critic steps (which their per-time-step updates reach every few batches);
- the epsilon floor spreads over available actions only (their controller's mask_before_softmax=true;
  coma_smac.yaml floors every action and renormalises over the available ones when acting and learning).

Axes: B episodes, T steps (T+1 slots), N agents, A actions, H hidden units, D critic input features.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import struct

from qmix.algorithms.coma.critic import (
    COMACritic,
    counterfactual_advantages,
    critic_input_dim,
    critic_inputs,
    critic_targets,
    slot_actions,
    taken_values,
)
from qmix.algorithms.coma.settings import COMASettings
from qmix.algorithms.recurrent_actors import HistoryInputs, draw
from qmix.algorithms.value_decomposition.targets import masked_td_loss
from qmix.episodes import EnvSpec, Episodes, previous_actions
from qmix.nets.agent import agent_input_dim, make_agent


@struct.dataclass
class Params:
    actor: Any  # logits over actions, per agent
    critic: Any  # Q(s, (u_-a, .)) per agent


@struct.dataclass
class COMAState:
    params: Params
    target_critic: Any
    actor_opt_state: Any
    critic_opt_state: Any
    env_steps: jax.Array  # [] int32, the env steps of every batch learned from so far (see `update`)
    last_target_update_episode: jax.Array  # [] int32, the episode count at the last target copy


@struct.dataclass
class Policy:
    actor: Any  # actor parameters
    epsilon: jax.Array  # [] the epsilon floor
    greedy: jax.Array  # [] bool: the most probable available action instead of a sample


UNAVAILABLE_LOGIT = -1e9  # finite (as IPPO's): probability exactly 0, and no -inf - -inf or 0 * -inf NaN


def floored_log_policy(logits: jax.Array, avail: jax.Array, epsilon: jax.Array) -> jax.Array:
    """log of the policy pi = (1 - eps) softmax + eps / n_avail over the available actions, 0 elsewhere:
    logits, avail [..., A], epsilon [] -> [..., A] (UNAVAILABLE_LOGIT where unavailable; a slot with no
    available action, i.e. padding, gets a uniform policy).

    In log space (log((1 - eps) p + eps / n) as a logaddexp) so that eps = 0 keeps log-softmax's
    precision and no log 0 appears.
    """
    allowed = avail | ~avail.any(axis=-1, keepdims=True)
    log_softmax = jax.nn.log_softmax(jnp.where(allowed, logits, UNAVAILABLE_LOGIT), axis=-1)
    n_allowed = allowed.sum(axis=-1, keepdims=True).astype(log_softmax.dtype)
    log_pi = jnp.logaddexp(jnp.log1p(-epsilon) + log_softmax, jnp.log(epsilon / n_allowed))
    return jnp.where(allowed, log_pi, UNAVAILABLE_LOGIT)


def rmsprop(lr: float, s: COMASettings) -> optax.GradientTransformation:
    """PyTorch's RMSprop (PyMARL): eps added outside the square root; after the clip of the global norm."""
    opt = optax.rmsprop(lr, decay=s.rmsprop_alpha, eps=s.rmsprop_eps, eps_in_sqrt=False)
    return optax.chain(optax.clip_by_global_norm(s.grad_norm_clip), opt) if s.grad_norm_clip is not None else opt


class COMA:
    """All methods are pure and jit-safe."""

    uses_replay = False

    def __init__(self, settings: COMASettings, spec: EnvSpec):
        self.settings = settings
        self.spec = spec
        self.actor = make_agent(settings.agent, spec.n_actions, settings.agent_hidden_dim)
        self.critic = COMACritic(spec.n_actions, settings.critic_hidden_dim)
        self.histories = HistoryInputs(spec.n_agents, spec.n_actions, settings.obs_last_action, settings.obs_agent_id)
        self.input_dim = agent_input_dim(spec.obs_dim, spec.n_agents, spec.n_actions, settings.obs_last_action,
                                         settings.obs_agent_id)
        self.critic_input_dim = critic_input_dim(spec.state_dim, spec.obs_dim, spec.n_agents, spec.n_actions)
        self.actor_optimizer = rmsprop(settings.lr, settings)
        self.critic_optimizer = rmsprop(settings.critic_lr, settings)

    # ----- state -----
    def init(self, key: jax.Array) -> COMAState:
        actor_key, critic_key = jax.random.split(key)
        n, s = self.spec.n_agents, self.settings
        params = Params(self.actor.init(actor_key, jnp.zeros((n, s.agent_hidden_dim)), jnp.zeros((n, self.input_dim))),
                        self.critic.init(critic_key, jnp.zeros((n, self.critic_input_dim))))
        zero = jnp.zeros((), jnp.int32)
        return COMAState(params=params, target_critic=params.critic,
                         actor_opt_state=self.actor_optimizer.init(params.actor),
                         critic_opt_state=self.critic_optimizer.init(params.critic),
                         env_steps=zero, last_target_update_episode=zero)

    def example_item(self) -> Episodes:
        return Episodes.empty(self.spec)

    # ----- acting -----
    def epsilon(self, env_steps: jax.Array) -> jax.Array:
        """Linear anneal from epsilon_start to epsilon_finish over epsilon_anneal_env_steps."""
        s = self.settings
        progress = jnp.minimum(env_steps / max(s.epsilon_anneal_env_steps, 1), 1.0)
        if s.epsilon_anneal_env_steps == 0:
            progress = jnp.ones_like(progress)
        return jnp.asarray(s.epsilon_start + (s.epsilon_finish - s.epsilon_start) * progress, jnp.float32)

    def acting_policy(self, state: COMAState, env_steps: jax.Array) -> Policy:
        return Policy(state.params.actor, self.epsilon(env_steps), jnp.zeros((), bool))

    def greedy(self, actor_params) -> Policy:
        return Policy(actor_params, jnp.zeros((), jnp.float32), jnp.ones((), bool))

    def test_policies(self, state: COMAState) -> dict[str, Policy]:
        return {"": self.greedy(state.params.actor)}

    def initial_actor_state(self, n_envs: int) -> tuple[jax.Array, jax.Array]:
        """(actor hidden state [E, N, H], previous actions [E, N], -1: none yet)."""
        return self.histories.initial_state(n_envs, self.settings.agent_hidden_dim)

    def act(self, policy: Policy, actor_state, key, obs, avail):
        hidden, logits = self.histories.step(self.actor, policy.actor, actor_state, obs)  # [E, N, A]
        actions = draw(key, floored_log_policy(logits, avail, policy.epsilon), policy.greedy)
        return (hidden, actions), actions

    # ----- learning -----
    def log_policy(self, actor_params, episodes: Episodes, epsilon: jax.Array) -> jax.Array:
        """The floored policy of every slot of whole episodes: -> log pi [B, T+1, N, A]. The hidden state
        starts at zero in slot 0 (each item is one whole episode)."""
        logits = self.histories.unroll(self.actor, actor_params, episodes)
        return floored_log_policy(logits, episodes.avail, epsilon)

    def critic_loss(self, critic_params, inputs: jax.Array, actions: jax.Array, targets: jax.Array,
                    filled: jax.Array):
        """The mean squared error of Q(s, u)_a over real (step, agent) pairs; any leading axes:
        inputs [..., N, D], actions and targets [..., N], filled [...] -> loss, (q [..., N, A], q taken)."""
        q = self.critic.apply(critic_params, inputs)
        q_taken = taken_values(q, actions)
        return masked_td_loss(q_taken, targets, filled), (q, q_taken)

    def update_critic(self, state: COMAState, inputs, actions, targets, filled):
        """inputs [B, T, N, D], actions and targets [B, T, N], filled [B, T] -> (critic parameters, optimiser
        state, q [B, T, N, A] of the critic before each of its steps, metrics, gradient steps).

        Batched (the default, as most later implementations): one step on the mean squared error over every
        real step. Sequential (the authors' code): one step per time step that has a real step, the last
        first, each on that time step's mean squared error; each time step's q is read just before its
        step, so the actor sees the values the authors' actor sees.
        """
        grad_fn = jax.value_and_grad(self.critic_loss, has_aux=True)
        params, opt_state = state.params.critic, state.critic_opt_state

        def step(params, opt_state, *batch):
            (loss, (q, q_taken)), grads = grad_fn(params, *batch)
            updates, opt_state = self.critic_optimizer.update(grads, opt_state, params)
            return optax.apply_updates(params, updates), opt_state, q, loss, optax.global_norm(grads), q_taken

        live = filled[..., None].astype(targets.dtype)  # [B, T, 1]

        def mean(x, weight):  # over the entries where weight is 1 (broadcast to x)
            weight = jnp.broadcast_to(weight, x.shape)
            return (x * weight).sum() / jnp.maximum(weight.sum(), 1.0)

        if self.settings.critic_update == "batched":
            params, opt_state, q, loss, grad_norm, q_taken = step(params, opt_state, inputs, actions, targets, filled)
            metrics = {"critic_loss": loss, "critic_grad_norm": grad_norm}
            steps = jnp.ones((), jnp.int32)
        else:
            def one_time_step(carry, batch):
                params, opt_state = carry
                new_params, new_opt_state, q, loss, grad_norm, q_taken = step(params, opt_state, *batch)
                real = batch[-1].any()  # a time step past every episode's end is skipped (as the authors')
                keep = lambda new, old: jnp.where(real, new, old)  # noqa: E731
                carry = jax.tree.map(keep, (new_params, new_opt_state), (params, opt_state))
                return carry, (q, q_taken, loss, grad_norm, real)

            time_major = jax.tree.map(lambda x: jnp.swapaxes(x, 0, 1), (inputs, actions, targets, filled))
            (params, opt_state), (q, q_taken, losses, grad_norms, real) = jax.lax.scan(
                one_time_step, (params, opt_state), time_major, reverse=True)
            q, q_taken = jnp.swapaxes(q, 0, 1), jnp.swapaxes(q_taken, 0, 1)
            weight = real.astype(losses.dtype)
            metrics = {"critic_loss": mean(losses, weight), "critic_grad_norm": mean(grad_norms, weight)}
            steps = real.sum().astype(jnp.int32)
        metrics = {**metrics, "q_taken_mean": mean(q_taken, live), "target_mean": mean(targets, live)}
        return params, opt_state, jax.lax.stop_gradient(q), metrics, steps

    def actor_objective(self, log_pi: jax.Array, advantages: jax.Array, batch: Episodes):
        """-mean over real (step, agent) of A_a log pi_a(u_a) - entropy_coef * entropy, as a function of the
        policy: log_pi [B, T+1, N, A], advantages [B, T, N] (constants) -> objective, metrics."""
        log_pi = log_pi[:, :-1]  # the steps taken
        mask = jnp.broadcast_to(batch.filled[..., None], advantages.shape).astype(log_pi.dtype)
        mean = lambda x: (x * mask).sum() / jnp.maximum(mask.sum(), 1.0)  # noqa: E731
        taken = taken_values(log_pi, batch.actions)
        policy_loss = -mean(advantages * taken)
        pi = jnp.exp(log_pi)
        entropy = mean(-(pi * jnp.where(pi > 0, log_pi, 0.0)).sum(axis=-1))
        objective = policy_loss - self.settings.entropy_coef * entropy
        return objective, {"actor_loss": policy_loss, "entropy": entropy, "pi_max": mean(pi.max(axis=-1))}

    def update(self, state: COMAState, batch: Episodes, key: jax.Array, axis_name: str | None = None):
        """One COMA update on an iteration's episodes [B, ...]: the critic's step(s), then one actor step.

        The actor's loss uses the epsilon-floored policy that acted (the authors' code does the same: its
        learner runs the controller in training mode). That epsilon follows from the env steps collected
        before this batch, which `state.env_steps` counts (on-policy, every collected step is learned from
        once, so it equals the loop's count when the batch's acting policy was made).
        """
        s, a = self.settings, self.spec.n_actions
        epsilon = self.epsilon(state.env_steps)
        # One forward pass of the actor serves the bootstrap actions, the baseline and (pulled back through
        # the unroll) the actor's gradient.
        log_pi, pull_back = jax.vjp(lambda p: self.log_policy(p, batch, epsilon), state.params.actor)
        actions = slot_actions(batch.actions, batch.filled, jax.random.categorical(key, log_pi))  # [B, T+1, N]
        inputs = critic_inputs(batch.state, batch.obs, actions, previous_actions(batch), a)  # [B, T+1, N, D]
        target_q = self.critic.apply(state.target_critic, inputs)
        targets = critic_targets(target_q, actions, batch.rewards, batch.terminated, batch.filled, s.gamma,
                                 s.td_lambda)  # [B, T, N]
        critic, critic_opt_state, q, critic_metrics, critic_steps = self.update_critic(
            state, inputs[:, :-1], batch.actions, targets, batch.filled)

        # Q and pi are constants to the actor: the baseline and advantage are not differentiated.
        pi = jax.lax.stop_gradient(jnp.exp(log_pi[:, :-1]))
        advantages, _ = counterfactual_advantages(q, pi, batch.actions)  # [B, T, N]
        (_, actor_metrics), d_log_pi = jax.value_and_grad(self.actor_objective, has_aux=True)(log_pi, advantages,
                                                                                              batch)
        (actor_grads,) = pull_back(d_log_pi)
        updates, actor_opt_state = self.actor_optimizer.update(actor_grads, state.actor_opt_state, state.params.actor)
        actor = optax.apply_updates(state.params.actor, updates)

        mask = jnp.broadcast_to(batch.filled[..., None], advantages.shape).astype(advantages.dtype)
        metrics = {**critic_metrics, **actor_metrics, "actor_grad_norm": optax.global_norm(actor_grads),
                   "advantage_mean": (advantages * mask).sum() / jnp.maximum(mask.sum(), 1.0)}
        new_state = state.replace(params=Params(actor, critic), actor_opt_state=actor_opt_state,
                                  critic_opt_state=critic_opt_state,
                                  env_steps=state.env_steps + batch.filled.sum().astype(jnp.int32))
        return new_state, metrics, critic_steps + 1

    def after_iteration(self, state: COMAState, episodes: jax.Array) -> COMAState:
        """Copy the critic to its target every target_update_interval_episodes collected episodes."""
        due = episodes - state.last_target_update_episode >= self.settings.target_update_interval_episodes
        return state.replace(
            target_critic=jax.tree.map(lambda new, old: jnp.where(due, new, old), state.params.critic,
                                       state.target_critic),
            last_target_update_episode=jnp.where(due, episodes, state.last_target_update_episode),
        )

    def status(self, env_steps: jax.Array) -> dict[str, jax.Array]:
        return {"epsilon": self.epsilon(env_steps)}

    # ----- what a finished run keeps -----
    def saved_parameters(self, state: COMAState) -> dict[str, Any]:
        return {"params": state.params}

    def policy_from_saved(self, name: str, tree: Any) -> Policy:
        return self.greedy(tree.actor)
