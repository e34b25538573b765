"""MPE `simple_spread` (jaxmarl's `MPE_simple_spread_v3`): N agents cover N landmarks without colliding.

`SimpleSpreadEnv` wraps jaxmarl's `SimpleSpreadMPE` (discrete actions) behind the interface of base.py;
docs/mpe.md describes the task. What the adapter decides, and why:

- Team reward: the SUM of jaxmarl's per-agent rewards. With jaxmarl's local_ratio of 0.5 agent i gets
  0.5 * (minus the number of agents it collides with) + 0.5 * (minus the summed distance from each
  landmark to its nearest agent), so the agents' rewards differ whenever some collide. The sum keeps
  every collision's cost in the team's reward and is the shared reward jaxmarl's own QMIX and VDN
  baselines train on (its CTRolloutManager), so returns compare with theirs.
- Global state: the physical state, `[agent positions (N, 2), agent velocities (N, 2), landmark
  positions (N, 2)]` flattened, in absolute coordinates. It is all the task depends on (landmarks never
  move; the communication channel is silent), 4N + 2N numbers instead of the N * obs_dim of the
  concatenated observations, which repeat the same positions relative to each agent.
- Episode end: the task has no terminal state, so `terminated` is always False and `truncated` is set
  here on step `episode_limit`. jaxmarl's own `done` is one step late: `step_env` compares the step count
  from before the step with max_steps, so it first reads True on step max_steps + 1 (26 steps by default),
  and its `step` auto-resets then. The adapter calls `step_env` (no auto-reset) and ignores its `done`.
- Measures (TimeStep.info): `collisions` (agent pairs touching after the step, summed over the episode),
  `occupied_landmarks` and `landmark_distance` (at the final step).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from qmix.envs.base import EnvState, EqualByIdentity, Measure, TimeStep
from qmix.envs.mpe_settings import DEFAULT_AGENTS, DEFAULT_EPISODE_LIMIT, MpeSettings  # noqa: F401
from qmix.envs.suite_import import lean_import

with lean_import("jaxmarl.environments.mpe"):  # not its __init__: it imports matplotlib for a viewer
    from jaxmarl.environments.mpe.simple_spread import SimpleSpreadMPE

N_ACTIONS = 5  # no-op, left, right, down, up
# A landmark counts as occupied when an agent is this close to it: MPE's own benchmark threshold.
OCCUPIED_DISTANCE = 0.1

MEASURES = (
    Measure("collisions", "agent pairs in contact, counted after every step and summed over the episode", "sum"),
    Measure("occupied_landmarks", f"landmarks with an agent within {OCCUPIED_DISTANCE} at the end", "last"),
    Measure("landmark_distance", "mean distance from each landmark to its nearest agent at the end", "last"),
)


def make_simple_spread(name: str, settings: MpeSettings) -> SimpleSpreadEnv:
    return SimpleSpreadEnv(n_agents=settings.agents, episode_limit=settings.episode_limit)


class SimpleSpreadEnv(EqualByIdentity):
    """simple_spread as an `Environment` (base.py); env_state is jaxmarl's MPE `State`.

    env_state.p_pos / p_vel: [N + L, 2] positions and velocities, agents first, then the L = N landmarks;
    env_state.step: steps taken this episode.
    """

    name = "simple_spread"
    has_win = False  # there is nothing to win: runs are summarised by their return
    fills_the_limit = True  # only the time limit ends an episode
    measures = MEASURES
    headline_metric = "return"
    n_actions = N_ACTIONS

    def __init__(self, n_agents: int = DEFAULT_AGENTS, episode_limit: int = DEFAULT_EPISODE_LIMIT):
        if n_agents < 1:
            raise ValueError(f"simple_spread needs at least 1 agent, got {n_agents}")
        if episode_limit < 1:
            raise ValueError(f"episode_limit must be a positive number of steps, got {episode_limit}")
        self.n_agents = int(n_agents)
        self.n_landmarks = int(n_agents)
        self.episode_limit = int(episode_limit)
        # max_steps only feeds jaxmarl's `done`, which the adapter ignores; it is set to match anyway
        self.mpe = SimpleSpreadMPE(num_agents=self.n_agents, num_landmarks=self.n_landmarks,
                                   max_steps=self.episode_limit)
        self.obs_dim = int(self.mpe.observation_space(self.mpe.agents[0]).shape[0])
        self.state_dim = 4 * self.n_agents + 2 * self.n_landmarks

    # Equal settings give equal environments, so jit caches keyed on the env are shared between instances.
    def _identity(self) -> tuple:
        return (type(self), self.n_agents, self.episode_limit)

    def __repr__(self) -> str:
        return f"SimpleSpreadEnv(n_agents={self.n_agents}, episode_limit={self.episode_limit})"

    # -- the interface -------------------------------------------------------------------------------

    def reset(self, key: jax.Array) -> tuple[EnvState, TimeStep]:
        obs, env_state = self.mpe.reset(key)
        no_reward = jnp.zeros((), jnp.float32)
        no_collisions = jnp.zeros((), jnp.float32)  # like the reward: no step led here
        return env_state, self._timestep(obs, env_state, no_reward, no_collisions)

    def step(self, key: jax.Array, env_state: EnvState, actions: jax.Array) -> tuple[EnvState, TimeStep]:
        """actions: [N] int32. Never auto-resets: after the last step the observation is the true one."""
        action_dict = {agent: actions[i] for i, agent in enumerate(self.mpe.agents)}
        obs, next_state, rewards, _, _ = self.mpe.step_env(key, env_state, action_dict)
        team_reward = sum(rewards[agent] for agent in self.mpe.agents)
        return next_state, self._timestep(obs, next_state, team_reward, self.collisions(next_state))

    # -- what the measures and the state read off jaxmarl's state ------------------------------------

    def collisions(self, env_state: EnvState) -> jax.Array:
        """[] float32: agent pairs closer than the sum of their radii (jaxmarl's collision test)."""
        positions = env_state.p_pos[: self.n_agents]  # [N, 2]
        radii = self.mpe.rad[: self.n_agents]  # [N]
        distances = jnp.linalg.norm(positions[:, None] - positions[None], axis=-1)  # [N, N]
        touching = distances < radii[:, None] + radii[None]
        each_pair_once = jnp.triu(jnp.ones_like(touching), k=1)  # also drops an agent against itself
        return jnp.sum(touching & each_pair_once).astype(jnp.float32)

    def nearest_agent_distances(self, env_state: EnvState) -> jax.Array:
        """[L] float32: each landmark's distance to its nearest agent."""
        agents = env_state.p_pos[: self.n_agents]  # [N, 2]
        landmarks = env_state.p_pos[self.n_agents :]  # [L, 2]
        return jnp.linalg.norm(landmarks[:, None] - agents[None], axis=-1).min(axis=1)

    def global_state(self, env_state: EnvState) -> jax.Array:
        """[4N + 2L] float32: agent positions, agent velocities, landmark positions (each flattened)."""
        n = self.n_agents
        parts = (env_state.p_pos[:n], env_state.p_vel[:n], env_state.p_pos[n:])
        return jnp.concatenate([part.reshape(-1) for part in parts]).astype(jnp.float32)

    # -- internals -----------------------------------------------------------------------------------

    def _timestep(self, obs: dict, env_state: EnvState, reward: jax.Array, collisions: jax.Array) -> TimeStep:
        distances = self.nearest_agent_distances(env_state)  # [L]
        no = jnp.zeros((), bool)
        return TimeStep(
            obs=jnp.stack([obs[agent] for agent in self.mpe.agents]).astype(jnp.float32),  # [N, obs_dim]
            state=self.global_state(env_state),  # [state_dim]
            avail_actions=jnp.ones((self.n_agents, self.n_actions), bool),  # every move, always
            reward=jnp.asarray(reward, jnp.float32),
            terminated=no,  # no terminal state: only the time limit ends an episode
            truncated=env_state.step >= self.episode_limit,
            won=no,
            info={
                "collisions": collisions,
                "occupied_landmarks": jnp.sum(distances < OCCUPIED_DISTANCE).astype(jnp.float32),
                "landmark_distance": jnp.mean(distances).astype(jnp.float32),
            },
        )
