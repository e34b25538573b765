"""MPE's two communication tasks from jaxmarl, discrete actions: `simple_speaker_listener` and
`simple_reference` (Lowe et al., 2017). docs/mpe.md describes both; what the adapters decide, and why:

- Team reward: the SUM of jaxmarl's per-agent rewards, as for simple_spread (jaxmarl's own QMIX and VDN
  train on that sum). In speaker-listener both agents get the same reward, so the team's is twice it; in
  reference each agent's mixes the shared and its own part (local_ratio 0.5). EPyMARL's benchmark paper
  reports MPE returns divided by the number of agents (2 here): halve these returns to compare.
- One shape for every agent: speaker-listener's agents differ (the speaker sees 3 numbers and has 3 actions,
  its words; the listener sees 11 and has 5 moves), so observations are zero-padded to the longest and the
  speaker's actions 3 and 4 are never available. Reference's agents are alike: 50 actions each (5 moves x
  10 words, jaxmarl's encoding: move = a mod 5, word = a div 5).
- Global state: what the task depends on, in absolute coordinates (documented per task below).
- Episode end: no terminal state; `truncated` on step `episode_limit`, set here (jaxmarl's `done` is one step
  late, as in simple_spread). `step_env` is called, never the auto-resetting `step`.
- Measure: `goal_distance`, at the final step, the distance from each agent that must move to its goal
  landmark (the listener; in reference both agents, averaged).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from qmix.envs.base import EnvState, EqualByIdentity, Measure, TimeStep
from qmix.envs.mpe_settings import DEFAULT_EPISODE_LIMIT, MpeCommunicationSettings
from qmix.envs.suite_import import lean_import

with lean_import("jaxmarl.environments.mpe"):
    from jaxmarl.environments.mpe.simple_reference import SimpleReferenceMPE
    from jaxmarl.environments.mpe.simple_speaker_listener import SimpleSpeakerListenerMPE

MEASURES = (Measure("goal_distance", "distance from the agents that must move to their goal landmarks, at the end",
                    "last"),)
N_LANDMARKS = 3


class CommunicationTask(EqualByIdentity):
    """The shared part of both adapters; env_state is jaxmarl's MPE `State` (p_pos, p_vel: agents first, then
    the landmarks; c [2, words]: what each agent last said; goal; step)."""

    has_win = False
    fills_the_limit = True  # only the time limit ends an episode
    measures = MEASURES
    headline_metric = "return"
    n_agents = 2
    mpe_class: type
    n_actions: int
    obs_dim: int
    state_dim: int

    def __init__(self, episode_limit: int = DEFAULT_EPISODE_LIMIT):
        if episode_limit < 1:
            raise ValueError(f"episode_limit must be a positive number of steps, got {episode_limit}")
        self.episode_limit = int(episode_limit)
        self.mpe = self.mpe_class(max_steps=self.episode_limit)  # max_steps only feeds the `done` ignored here

    def _identity(self) -> tuple:
        return (type(self), self.episode_limit)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(episode_limit={self.episode_limit})"

    def reset(self, key: jax.Array) -> tuple[EnvState, TimeStep]:
        obs, env_state = self.mpe.reset(key)
        return env_state, self._timestep(obs, env_state, jnp.zeros((), jnp.float32))

    def step(self, key: jax.Array, env_state: EnvState, actions: jax.Array) -> tuple[EnvState, TimeStep]:
        """actions: [2] int32. Never auto-resets: after the last step the observation is the true one."""
        action_dict = {agent: actions[i] for i, agent in enumerate(self.mpe.agents)}
        obs, next_state, rewards, _, _ = self.mpe.step_env(key, env_state, action_dict)
        team_reward = sum(rewards[agent] for agent in self.mpe.agents)
        return next_state, self._timestep(obs, next_state, team_reward)

    def _timestep(self, obs: dict, env_state: EnvState, reward: jax.Array) -> TimeStep:
        padded = [jnp.pad(obs[agent], (0, self.obs_dim - obs[agent].shape[0])) for agent in self.mpe.agents]
        no = jnp.zeros((), bool)
        return TimeStep(
            obs=jnp.stack(padded).astype(jnp.float32),  # [2, obs_dim]
            state=self.global_state(env_state),  # [state_dim]
            avail_actions=self.available_actions(),
            reward=jnp.asarray(reward, jnp.float32),
            terminated=no,
            truncated=env_state.step >= self.episode_limit,
            won=no,
            info={"goal_distance": self.goal_distance(env_state).astype(jnp.float32)},
        )

    def landmarks(self, env_state: EnvState) -> jax.Array:
        return env_state.p_pos[self.n_agents:]  # [3, 2]

    def available_actions(self) -> jax.Array:
        return jnp.ones((self.n_agents, self.n_actions), bool)

    def global_state(self, env_state: EnvState) -> jax.Array:
        raise NotImplementedError

    def goal_distance(self, env_state: EnvState) -> jax.Array:
        raise NotImplementedError


class SpeakerListenerEnv(CommunicationTask):
    """simple_speaker_listener: the speaker (agent 0, immobile) sees which of 3 landmarks is the goal and says
    one of 3 words; the listener (agent 1) sees the landmarks relative to itself and the word, and must go
    there. Reward (each agent): minus the listener's squared distance to the goal.

    State [16]: listener position (2) and velocity (2), the landmarks' positions (3 x 2), the goal one-hot
    (3), the speaker's last word (3)."""

    name = "simple_speaker_listener"
    mpe_class = SimpleSpeakerListenerMPE
    n_actions = 5  # the listener's moves; the speaker has 3 words (actions 0-2)
    obs_dim = 11  # the listener's: velocity 2, landmarks relative 3 x 2, the word heard 3 (the speaker's 3: padded)
    state_dim = 16
    speaker_words = 3

    def available_actions(self) -> jax.Array:
        speaker = jnp.arange(self.n_actions) < self.speaker_words
        return jnp.stack([speaker, jnp.ones((self.n_actions,), bool)])

    def global_state(self, env_state: EnvState) -> jax.Array:
        parts = (env_state.p_pos[1], env_state.p_vel[1], self.landmarks(env_state).reshape(-1),
                 jax.nn.one_hot(env_state.goal, N_LANDMARKS), env_state.c[0])
        return jnp.concatenate(parts).astype(jnp.float32)

    def goal_distance(self, env_state: EnvState) -> jax.Array:
        return jnp.linalg.norm(env_state.p_pos[1] - self.landmarks(env_state)[env_state.goal])


class ReferenceEnv(CommunicationTask):
    """simple_reference: each agent must reach a goal landmark that only the other agent sees the colour of, so
    each tells the other where to go while moving. Reward (agent i): 0.5 x the team's mean of minus each
    agent's distance to its goal + 0.5 x minus the other agent's distance to its goal.

    State [40]: both agents' positions (2 x 2) and velocities (2 x 2), the landmarks' positions (3 x 2), each
    agent's goal one-hot (2 x 3), what each last said (2 x 10)."""

    name = "simple_reference"
    mpe_class = SimpleReferenceMPE
    n_actions = 50  # 5 moves x 10 words
    obs_dim = 21  # velocity 2, landmarks relative 3 x 2, the other's goal colour 3, the other's last word 10
    state_dim = 40

    def global_state(self, env_state: EnvState) -> jax.Array:
        n = self.n_agents
        parts = (env_state.p_pos[:n].reshape(-1), env_state.p_vel[:n].reshape(-1),
                 self.landmarks(env_state).reshape(-1), jax.nn.one_hot(env_state.goal, N_LANDMARKS).reshape(-1),
                 env_state.c.reshape(-1))
        return jnp.concatenate(parts).astype(jnp.float32)

    def goal_distance(self, env_state: EnvState) -> jax.Array:
        goals = self.landmarks(env_state)[env_state.goal]  # [2, 2]: agent i's goal landmark
        return jnp.linalg.norm(env_state.p_pos[: self.n_agents] - goals, axis=-1).mean()


def make_speaker_listener(name: str, settings: MpeCommunicationSettings) -> SpeakerListenerEnv:
    return SpeakerListenerEnv(settings.episode_limit)


def make_reference(name: str, settings: MpeCommunicationSettings) -> ReferenceEnv:
    return ReferenceEnv(settings.episode_limit)
