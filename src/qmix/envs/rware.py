"""Robotic Warehouse from jumanji (`RobotWarehouse`, 1.1.2), read from its raw TimeStep and State;
docs/rware.md.

What the adapter decides, and why:
- Scenarios: rware's `tiny-2ag`, `tiny-4ag`, `small-4ag` as explicit generators (jumanji's default layout is
  neither): shelf blocks of 1 x 3 (tiny) or 2 x 3 (small), columns 8 high, sensor range 1, a request queue of
  one shelf per agent, 500 steps.
- Episode end: jumanji ends an episode at its time limit as a *termination* (no truncation flag), and when
  two robots collide (the original rware resolves collisions instead; jumanji cannot). Here `terminated`
  is the collision only and `truncated` is computed from the step count, so the learner bootstraps at the
  time limit.
- Team reward: jumanji's reward is already one team reward (the shelves delivered this step).
- Available actions: jumanji's action masks (0 no-op, 1 forward, 2 left, 3 right, 4 toggle load).
- Global state: every robot's (row, column) divided by the grid's size, its direction one-hot and whether it
  carries a shelf; every shelf's (row, column) the same way and whether it is requested.
- Measure: `deliveries`, the requested shelves delivered over the episode (the same as the return).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from qmix.envs.base import EnvState, EqualByIdentity, Measure, TimeStep
from qmix.envs.rware_settings import RwareSettings, Warehouse
from qmix.envs.suite_import import lean_import

with lean_import("jumanji.environments.routing"):  # jumanji is optional (the `jumanji` extra)
    from jumanji.environments.routing.robot_warehouse import RobotWarehouse
    from jumanji.environments.routing.robot_warehouse.generator import RandomGenerator

N_ACTIONS = 5
COLUMN_HEIGHT = 8
SENSOR_RANGE = 1
MEASURES = (Measure("deliveries", "requested shelves delivered over the episode", "sum"),)


def make_rware(name: str, settings: RwareSettings) -> RwareEnv:
    return RwareEnv(name, Warehouse.of(name), settings.episode_limit)


class RwareEnv(EqualByIdentity):
    """A Robotic Warehouse scenario as an `Environment` (base.py); env_state is jumanji's `State`."""

    has_win = False
    measures = MEASURES
    headline_metric = "return"
    n_actions = N_ACTIONS

    def __init__(self, name: str, warehouse: Warehouse, episode_limit: int = 500):
        self.name, self.warehouse, self.episode_limit = name, warehouse, int(episode_limit)
        self.n_agents = warehouse.agents
        generator = RandomGenerator(warehouse.shelf_rows, warehouse.shelf_columns, COLUMN_HEIGHT, warehouse.agents,
                                    SENSOR_RANGE, request_queue_size=warehouse.agents)
        self.rware = RobotWarehouse(generator=generator, time_limit=self.episode_limit)
        self.obs_dim = int(self.rware.num_obs_features)
        self.n_shelves = len(self.rware.shelf_ids)
        self.state_dim = 7 * self.n_agents + 3 * self.n_shelves

    def _identity(self) -> tuple:
        return (type(self), self.name, self.episode_limit)

    def __repr__(self) -> str:
        return f"RwareEnv({self.name!r}, episode_limit={self.episode_limit})"

    def reset(self, key: jax.Array) -> tuple[EnvState, TimeStep]:
        env_state, first = self.rware.reset(key)
        return env_state, self._timestep(env_state, first.observation, jnp.zeros((), jnp.float32), jnp.zeros((), bool))

    def step(self, key: jax.Array, env_state: EnvState, actions: jax.Array) -> tuple[EnvState, TimeStep]:
        """actions: [N] int32. jumanji's step never resets; its key lives in its state."""
        next_state, ts = self.rware.step(env_state, actions)
        ended = ts.last()
        time_up = next_state.step_count >= self.episode_limit
        collided = ended & ~time_up  # jumanji ends an episode for a collision or the time limit, nothing else
        return next_state, self._timestep(next_state, ts.observation, ts.reward, collided)

    def global_state(self, env_state: EnvState) -> jax.Array:
        """[7N + 3 x shelves]: robots' (row, column) / the grid's size, direction one-hot (4), carrying; shelves'
        (row, column) / the grid's size, requested."""
        rows, columns = self.rware.grid_size
        scale = jnp.array([rows, columns], jnp.float32)
        agents, shelves = env_state.agents, env_state.shelves
        robot = jnp.concatenate([jnp.stack([agents.position.x, agents.position.y], -1) / scale,
                                 jax.nn.one_hot(agents.direction, 4), agents.is_carrying[:, None]], axis=-1)
        shelf = jnp.concatenate([jnp.stack([shelves.position.x, shelves.position.y], -1) / scale,
                                 shelves.is_requested[:, None]], axis=-1)
        return jnp.concatenate([robot.reshape(-1), shelf.reshape(-1)]).astype(jnp.float32)

    def _timestep(self, env_state: EnvState, observation, reward: jax.Array, collided: jax.Array) -> TimeStep:
        reward = jnp.asarray(reward, jnp.float32)
        return TimeStep(
            obs=observation.agents_view.astype(jnp.float32),  # [N, obs_dim]
            state=self.global_state(env_state),
            avail_actions=observation.action_mask.astype(bool),
            reward=reward,
            terminated=collided,
            truncated=(env_state.step_count >= self.episode_limit) & ~collided,
            won=jnp.zeros((), bool),
            info={"deliveries": reward},
        )
