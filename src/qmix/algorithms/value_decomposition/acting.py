"""What every value-decomposition learner (replay-based or PQN-style) shares outside its loss: parameters
of one agent network shared by the agents and of a mixer, epsilon-greedy acting over available actions on
each agent's own observation history, and Q_tot of every joint action for the matrix games.

A class using it sets `settings` (agent inputs and the epsilon schedule), `spec`, `agent`, `input_dim`,
`mixer` and `mixer_state_dim`. Axes: E environments, N agents, A actions, H hidden units.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from qmix.algorithms.value_decomposition import targets as td
from qmix.nets.agent import build_agent_inputs
from qmix.nets.mixers import MixerInput


@struct.dataclass
class Params:
    agent: Any
    mixer: Any


@struct.dataclass
class Policy:
    agent: Any  # agent-network parameters
    epsilon: jax.Array  # [] exploration rate (0: greedy)


def select_actions(key: jax.Array, q: jax.Array, avail: jax.Array, epsilon: jax.Array) -> jax.Array:
    """Epsilon-greedy over available actions, independently per agent: q, avail [..., A] -> [...] int32."""
    explore_key, random_key = jax.random.split(key)
    greedy = td.masked_argmax(q, avail)
    random = jax.random.categorical(random_key, jnp.where(avail, 0.0, -jnp.inf))
    explore = jax.random.uniform(explore_key, greedy.shape) < epsilon
    return jnp.where(explore, random, greedy).astype(jnp.int32)


def linear_anneal(start: float, finish: float, anneal_steps: int, env_steps: jax.Array) -> jax.Array:
    """From `start` to `finish` linearly over `anneal_steps` env steps, then `finish` (at once if 0)."""
    progress = jnp.minimum(env_steps / max(anneal_steps, 1), 1.0)
    if anneal_steps == 0:
        progress = jnp.ones_like(progress)
    return start + (finish - start) * progress


def unroll_resetting(agent, agent_params, hidden: jax.Array, inputs: jax.Array, starts: jax.Array | None
                     ) -> jax.Array:
    """The agent network over every slot of rows: inputs [B, L, N, D] from `hidden` [B, N, H] -> outputs
    [B, L, N, ...]; the hidden state resets to zero at each slot marked in `starts` [B, L] (None: never, one
    episode per row starting from `hidden`). Shared by the replay learner's packed rows and PQN's rollouts."""
    if starts is None:
        def step(hidden, x):
            return agent.apply(agent_params, hidden, x)

        slots = jnp.swapaxes(inputs, 0, 1)
    else:
        def step(hidden, slot):
            x, start = slot
            return agent.apply(agent_params, jnp.where(start[:, None, None], 0.0, hidden), x)

        slots = (jnp.swapaxes(inputs, 0, 1), jnp.swapaxes(starts, 0, 1))
    _, out = jax.lax.scan(step, hidden, slots)
    return jnp.swapaxes(out, 0, 1)


class EpsilonGreedyAgents:
    """The acting half of the algorithm protocol (algorithms/base.py) for a shared Q-value agent network."""

    def init_params(self, key: jax.Array) -> Params:
        agent_key, mixer_key = jax.random.split(key)
        n = self.spec.n_agents
        agent_params = self.agent.init(agent_key, jnp.zeros((n, self.settings.agent_hidden_dim)),
                                       jnp.zeros((n, self.input_dim)))
        return Params(agent_params, self.mixer.init(mixer_key, self.example_mixer_input()))

    def example_mixer_input(self) -> MixerInput:
        """One situation's mixer input (zeros, every action available), to build a mixer's parameters."""
        n, a = self.spec.n_agents, self.spec.n_actions
        return MixerInput(jnp.zeros((n,)), jnp.zeros((n, a)), jnp.zeros((n,), jnp.int32),
                          jnp.zeros((self.mixer_state_dim,)), jnp.ones((n, a), bool))

    def epsilon(self, env_steps: jax.Array) -> jax.Array:
        """Linear anneal from epsilon_start to epsilon_finish over epsilon_anneal_env_steps."""
        s = self.settings
        return linear_anneal(s.epsilon_start, s.epsilon_finish, s.epsilon_anneal_env_steps, env_steps)

    def acting_policy(self, state, env_steps: jax.Array) -> Policy:
        return Policy(state.params.agent, self.epsilon(env_steps))

    def greedy(self, agent_params) -> Policy:
        return Policy(agent_params, jnp.zeros((), jnp.float32))

    def test_policies(self, state) -> dict[str, Policy]:
        return {"": self.greedy(state.params.agent)}

    def initial_actor_state(self, n_envs: int) -> tuple[jax.Array, jax.Array]:
        """(RNN hidden state [E, N, H], previous actions [E, N], -1: none yet)."""
        return self.initial_hidden(n_envs), -jnp.ones((n_envs, self.spec.n_agents), jnp.int32)

    def act(self, policy: Policy, actor_state, key, obs, avail):
        hidden, last_actions = actor_state
        hidden, q = self.agent_values(policy.agent, hidden, obs, last_actions)  # [E, N, A]
        actions = select_actions(key, q, avail, policy.epsilon)
        return (hidden, actions), actions

    def initial_hidden(self, *batch: int) -> jax.Array:
        return jnp.zeros((*batch, self.spec.n_agents, self.settings.agent_hidden_dim))

    def agent_values(self, agent_params, hidden, obs, last_actions):
        """One decentralised step: obs [..., N, O], last_actions [..., N] -> hidden, q [..., N, A]."""
        s = self.settings
        inputs = build_agent_inputs(obs, last_actions, self.spec.n_actions, s.obs_last_action, s.obs_agent_id)
        return self.agent.apply(agent_params, hidden, inputs)

    def status(self, env_steps: jax.Array) -> dict[str, jax.Array]:
        return {"epsilon": self.epsilon(env_steps)}

    def saved_parameters(self, state) -> dict[str, Any]:
        return {"params": state.params}

    def policy_from_saved(self, name: str, tree: Any) -> Policy:
        return self.greedy(tree.agent if name == "params" else tree)

    def joint_action_values(self, name: str, tree: Any, obs: jax.Array, state: jax.Array, avail: jax.Array
                            ) -> jax.Array:
        """Q_tot of every joint action in one situation (the first step of an episode: no previous actions),
        from the saved `params`: obs [N, O], state [S], avail [N, A] -> [A, ..., A]. IQL's per-agent values (K = N) are
        summed, the closest joint reading of independent learners."""
        if name != "params":
            raise ValueError(f"joint action-values come from the saved 'params', not '{name}'")
        n, a = self.spec.n_agents, self.spec.n_actions
        _, q = self.agent_values(tree.agent, self.initial_hidden(), obs, -jnp.ones((n,), jnp.int32))  # [N, A]
        joint = jnp.stack(jnp.meshgrid(*[jnp.arange(a)] * n, indexing="ij"), axis=-1).reshape(-1, n)  # [A^N, N]
        chosen = q[jnp.arange(n), joint]  # [A^N, N]
        extra = self.mixer_state_dim - state.shape[-1]  # state_last_action: no previous actions yet (zeros)
        mixer_state = jnp.concatenate([state, jnp.zeros((extra,))]) if extra else state
        mixer_input = MixerInput(chosen, jnp.broadcast_to(q, (len(joint), n, a)), joint,
                                 jnp.broadcast_to(mixer_state, (len(joint), self.mixer_state_dim)),
                                 jnp.broadcast_to(avail, (len(joint), n, a)))
        q_tot = self.mixer.apply(tree.mixer, mixer_input).sum(axis=-1)  # [A^N]
        return q_tot.reshape((a,) * n)
