"""Level-Based Foraging from jumanji (`LevelBasedForaging`, 1.1.2), read from its raw TimeStep; docs/lbf.md.

What the adapter decides, and why:
- Spawning: jumanji's generator blanks the agents' spawn mask with `mask.at[food_positions]`, which indexes
  whole rows by every food's x and y coordinate (a [F, 2] index array selects rows), so agents never start
  in any row whose index equals a food coordinate. `SpawnFixedGenerator` places agents on every cell but the
  food's (its own `__call__`, jumanji's samplers); a test shows both.
- Team reward: the sum of jumanji's per-agent rewards (normalised: a whole episode's sum is 1 when all food
  is eaten), as EPyMARL sums LBF's agents' rewards.
- Episode end: jumanji terminates when all food is eaten and truncates at its time limit (a termination if
  both); `terminated` and `truncated` are read from the state, not from jumanji's gym wrapper.
- Available actions: jumanji's action masks (0 no-op, 1 up, 2 down, 3 left, 4 right, 5 load).
- Global state: every agent's position (row, column) and level, every food's position, level and whether it
  is eaten, positions divided by the grid size and levels by the largest possible food level.
- Measure: `food_eaten`, the share of the food eaten by the episode's end (LBF's success measure).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from qmix.envs.base import EnvState, EqualByIdentity, Measure, TimeStep
from qmix.envs.lbf_settings import LbfSettings, Scenario
from qmix.envs.suite_import import lean_import

with lean_import("jumanji.environments.routing"):  # jumanji is optional (the `jumanji` extra)
    from jumanji.environments.routing.lbf import LevelBasedForaging
    from jumanji.environments.routing.lbf.generator import RandomGenerator
    from jumanji.environments.routing.lbf.types import Agent, Food, State

N_ACTIONS = 6
MEASURES = (Measure("food_eaten", "the share of the food eaten by the end of the episode", "last"),)


class SpawnFixedGenerator(RandomGenerator):
    """jumanji's generator with the agents' spawn mask fixed: every cell but the food's."""

    def __call__(self, key: jax.Array) -> State:
        food_key, agents_key, food_level_key, agent_level_key, key = jax.random.split(key, 5)
        food_positions = self.sample_food(food_key)  # [F, 2] (row, column)
        free = jnp.ones((self.grid_size, self.grid_size), bool)
        free = free.at[food_positions[:, 0], food_positions[:, 1]].set(False)  # one cell per food
        agent_positions = self.sample_agents(key=agents_key, mask=free.ravel())
        agent_levels = self.sample_levels(self.max_agent_level, (self.num_agents,), agent_level_key)
        max_food_level = jnp.sum(jnp.sort(agent_levels)[:3])  # as jumanji: at most three agents are needed
        food_levels = jnp.where(self.force_coop, jnp.full((self.num_food,), max_food_level),
                                self.sample_levels(max_food_level, (self.num_food,), food_level_key))
        agents = jax.vmap(Agent)(id=jnp.arange(self.num_agents), position=agent_positions, level=agent_levels,
                                 loading=jnp.zeros((self.num_agents,), bool))
        food = jax.vmap(Food)(id=jnp.arange(self.num_food), position=food_positions, level=food_levels,
                              eaten=jnp.zeros((self.num_food,), bool))
        return State(key=key, step_count=jnp.array(0, jnp.int32), agents=agents, food_items=food)


def make_lbf(name: str, settings: LbfSettings) -> LbfEnv:
    return LbfEnv(name, Scenario.parse(name), settings.episode_limit, settings.max_agent_level)


class LbfEnv(EqualByIdentity):
    """A Level-Based Foraging scenario as an `Environment` (base.py); env_state is jumanji's `State`."""

    has_win = False
    measures = MEASURES
    headline_metric = "return"
    n_actions = N_ACTIONS

    def __init__(self, name: str, scenario: Scenario, episode_limit: int = 50, max_agent_level: int = 3):
        self.name, self.scenario = name, scenario
        self.n_agents, self.episode_limit, self.max_agent_level = scenario.agents, int(episode_limit), max_agent_level
        generator = SpawnFixedGenerator(scenario.grid_size, scenario.agents, scenario.food, scenario.sight,
                                        max_agent_level, scenario.force_coop)
        self.lbf = LevelBasedForaging(generator=generator, time_limit=self.episode_limit)
        self.obs_dim = 3 * (scenario.food + scenario.agents)  # jumanji's vector view: (row, column, level) each
        self.state_dim = 3 * scenario.agents + 4 * scenario.food

    def _identity(self) -> tuple:
        return (type(self), self.name, self.episode_limit, self.max_agent_level)

    def __repr__(self) -> str:
        return f"LbfEnv({self.name!r}, episode_limit={self.episode_limit}, max_agent_level={self.max_agent_level})"

    def reset(self, key: jax.Array) -> tuple[EnvState, TimeStep]:
        env_state, first = self.lbf.reset(key)
        return env_state, self._timestep(env_state, first.observation, jnp.zeros((), jnp.float32))

    def step(self, key: jax.Array, env_state: EnvState, actions: jax.Array) -> tuple[EnvState, TimeStep]:
        """actions: [N] int32. jumanji's step is deterministic (the key is unused) and never resets."""
        env_state, ts = self.lbf.step(env_state, actions)
        return env_state, self._timestep(env_state, ts.observation, jnp.sum(ts.reward))

    def global_state(self, env_state: EnvState) -> jax.Array:
        """[3N + 4F]: agents' (row, column) / grid size and level / the largest food level, then the food's
        (row, column) / grid size, level / the largest food level and eaten (0 or 1)."""
        size = float(self.scenario.grid_size)
        top_level = float(3 * self.max_agent_level)  # a food's level is at most three agents' levels
        agents, food = env_state.agents, env_state.food_items
        agent_rows = jnp.concatenate([agents.position / size, agents.level[:, None] / top_level], axis=-1)  # [N, 3]
        food_rows = jnp.concatenate([food.position / size, food.level[:, None] / top_level, food.eaten[:, None]],
                                    axis=-1)  # [F, 4]
        return jnp.concatenate([agent_rows.reshape(-1), food_rows.reshape(-1)]).astype(jnp.float32)

    def _timestep(self, env_state: EnvState, observation, reward: jax.Array) -> TimeStep:
        all_eaten = jnp.all(env_state.food_items.eaten)
        return TimeStep(
            obs=observation.agents_view.astype(jnp.float32),  # [N, 3 (F + N)]
            state=self.global_state(env_state),
            avail_actions=observation.action_mask,
            reward=jnp.asarray(reward, jnp.float32),
            terminated=all_eaten,
            truncated=(env_state.step_count >= self.episode_limit) & ~all_eaten,
            won=jnp.zeros((), bool),
            info={"food_eaten": jnp.mean(env_state.food_items.eaten.astype(jnp.float32))},
        )
