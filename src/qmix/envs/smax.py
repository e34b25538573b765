"""The paper's StarCraft maps on SMAX, jaxmarl's JAX re-implementation of SMAC (Rashid et al., 2018, section 6).

`SmaxEnv` wraps jaxmarl's `HeuristicEnemySMAX` (the learning team plays the built-in scripted enemy)
behind the small interface of base.py: per-agent dicts become `[N, ...]` arrays, the step never
auto-resets, and terminated / truncated / won are computed here from the unit states.

Every map uses one table of seven unit types: SMAX's six plus a colossus (needed by 1c3s5z), so a
unit-type one-hot has the same meaning on every map. docs/smax.md derives the colossus numbers. A drawn
(SMACv2-style) map draws its units' types and start positions every episode (smax_draws.py), and its SMAC
reward scale follows each episode's enemies.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from qmix.envs.base import EnvState, EqualByIdentity, TimeStep
from qmix.envs.smax_draws import install_draws
from qmix.envs.smax_maps import (  # noqa: F401  (the maps' facts, also read from here)
    COLOSSUS,
    DRAWN_MAPS,
    REWARD_SETTINGS,
    SMAX_MAPS,
    UNIT_TYPE_INDEX,
    UNIT_TYPES,
    DrawnMapSpec,
    MapSpec,
    SmaxSettings,
    UnitType,
    describe_map,
    get_map,
    list_maps,
)
from qmix.envs.suite_import import lean_import

with lean_import("jaxmarl.environments"):
    from jaxmarl.environments.smax import HeuristicEnemySMAX, Scenario


def _unit_type_kwargs() -> dict:
    """SMAX constructor arguments that install the UNIT_TYPES table."""

    def column(field: str) -> jax.Array:
        return jnp.array([getattr(unit, field) for unit in UNIT_TYPES], jnp.float32)

    return dict(
        unit_type_names=[unit.name for unit in UNIT_TYPES],
        unit_type_shorthands=[unit.shorthand for unit in UNIT_TYPES],
        unit_type_velocities=column("velocity"),
        unit_type_attacks=column("attack"),
        unit_type_attack_ranges=column("attack_range"),
        unit_type_sight_ranges=column("sight_range"),
        unit_type_radiuses=column("radius"),
        unit_type_health=column("health"),
        unit_type_weapon_cooldowns=column("weapon_cooldown"),
    )


# SMAC's reward constants (its defaults: reward_death_value, reward_win, reward_scale_rate).
SMAC_KILL_BONUS = 10.0
SMAC_WIN_BONUS = 200.0
SMAC_MAX_RETURN = 20.0
SMAC_NEGATIVE_SCALE = 0.5  # SMAC's reward_negative_scale: the weight of the team's own losses when signed


def smac_reward_scale(n_enemies: int, enemy_full_health):
    """SMAC's reward scale, so that the best possible return is SMAC_MAX_RETURN: every enemy point removed,
    every kill and the win. `enemy_full_health`: the enemies' summed health + shields at the start (a
    number, or a traced scalar on a drawn map)."""
    return SMAC_MAX_RETURN / (n_enemies * SMAC_KILL_BONUS + SMAC_WIN_BONUS + enemy_full_health)


def _scenario(spec: MapSpec | DrawnMapSpec) -> Scenario:
    if isinstance(spec, DrawnMapSpec):  # placeholder types: both smacv2 flags make reset draw them
        unit_types = jnp.zeros((spec.n_allies + spec.n_enemies,), jnp.uint8)
        return Scenario(unit_types, spec.n_allies, spec.n_enemies, True, True)
    unit_types = jnp.array([UNIT_TYPE_INDEX[name] for name in spec.allies + spec.enemies], jnp.uint8)
    return Scenario(unit_types, len(spec.allies), len(spec.enemies), False, False)


# ---------------------------------------------------------------------------------------------------
# The environment

NOOP_ACTION = 4  # SMAX's "stop": the only action a dead unit has
N_MOVE_ACTIONS = 5  # north, east, south, west, stop; attack actions follow, one per enemy
# [4, 2] unit vector of movement actions 0..3 (x east, y north), as SMAX decodes them
MOVE_DIRECTIONS = ((0.0, 1.0), (1.0, 0.0), (0.0, -1.0), (-1.0, 0.0))
NO_UNIT = -1


def attacked_units(attack_actions: jax.Array, n_allies: int) -> jax.Array:
    """SMAX's last actions [..., U] (allies first) -> the unit each one attacks [..., U], or NO_UNIT.

    Attack actions name enemies from the attacker's side: allies count the enemies from the first one,
    enemies count the allies from the last one.
    """
    attacker = jnp.arange(attack_actions.shape[-1])
    index = attack_actions - N_MOVE_ACTIONS
    target = jnp.where(attacker < n_allies, n_allies + index, n_allies - 1 - index)
    return jnp.where(attack_actions >= N_MOVE_ACTIONS, target, NO_UNIT)


def make_smax(name: str, settings: SmaxSettings) -> SmaxEnv:
    return SmaxEnv(name, reward=settings.reward, episode_limit=settings.episode_limit)


class SmaxEnv(EqualByIdentity):
    """A SMAX map as an `Environment` (base.py); the enemy is SMAX's scripted heuristic.

    env_state is jaxmarl's `HeuristicEnemySMAX` state; `env_state.state` holds the units
    (positions [U, 2], health [U], alive [U], types [U]; allies first, U = n_agents + n_enemies).
    """

    has_win = True  # every enemy dead while an ally lives; runs are summarised by their win rate

    def __init__(self, map_name: str, reward: str = "smac", episode_limit: int | None = None):
        spec = get_map(map_name)
        if reward not in REWARD_SETTINGS:
            raise ValueError(
                f"unknown reward setting {reward!r}; valid settings: {', '.join(REWARD_SETTINGS)}"
            )
        if episode_limit is not None and episode_limit < 1:
            raise ValueError(f"episode_limit must be a positive number of steps, got {episode_limit}")
        self.name = map_name
        self.spec = spec
        self.reward_setting = reward
        self.episode_limit = int(episode_limit or spec.episode_limit)
        self.n_agents = spec.n_allies
        self.n_enemies = spec.n_enemies
        self.n_actions = N_MOVE_ACTIONS + self.n_enemies
        # SMAX's own time limit matches ours; its `done` is ignored (we split terminated/truncated)
        self.smax = HeuristicEnemySMAX(
            scenario=_scenario(spec),
            max_steps=self.episode_limit,
            observation_type="unit_list",
            **_unit_type_kwargs(),
        )
        self.drawn = isinstance(spec, DrawnMapSpec)  # unit types and start positions drawn every episode
        if self.drawn:
            install_draws(self.smax._env, spec)
        self.obs_dim = int(self.smax.obs_size)
        # The global state: every unit's own features as SMAX normalises them for observations (health and
        # cooldown as fractions, position / map size, type one-hot; zeros once dead), allies first.
        # SMAX's `get_world_state` carries raw positions (up to 32) and cooldowns, which blow up the
        # hypernetworks' outputs at initialisation.
        self.state_dim = len(self.smax.own_features) * (self.n_agents + self.n_enemies)
        # SMAC scales its reward so the best possible return is SMAC_MAX_RETURN: one number on a fixed map;
        # None on a drawn map, whose scale follows each episode's enemies (episode_reward_scale)
        self.enemy_max_health = None if self.drawn else sum(UNIT_TYPES[UNIT_TYPE_INDEX[name]].health
                                                            for name in spec.enemies)
        self.smac_reward_scale = None if self.drawn else smac_reward_scale(self.n_enemies, self.enemy_max_health)

    # Equal settings give equal environments, so jit caches keyed on the env are shared between instances.
    def _identity(self) -> tuple:
        return (type(self), self.name, self.reward_setting, self.episode_limit)

    def __repr__(self) -> str:
        return f"SmaxEnv({self.name!r}, reward={self.reward_setting!r}, episode_limit={self.episode_limit})"

    # -- the interface -------------------------------------------------------------------------------

    def reset(self, key: jax.Array) -> tuple[EnvState, TimeStep]:
        obs, env_state = self.smax.reset(key)
        no_reward = jnp.zeros((), jnp.float32)
        return env_state, self._timestep(obs, env_state, no_reward)

    def step(self, key: jax.Array, env_state: EnvState, actions: jax.Array) -> tuple[EnvState, TimeStep]:
        """actions: [N] int32. Never auto-resets: after the last step the observation is the true one."""
        action_dict = {agent: actions[i] for i, agent in enumerate(self.smax.agents)}
        obs, next_state, rewards, _, _ = self.smax.step_env(key, env_state, action_dict)
        if self.reward_setting in ("smac", "smac_signed"):
            signed = self.reward_setting == "smac_signed"
            reward = self._smac_reward(env_state.state, next_state.state, signed)
        else:
            reward = rewards[self.smax.agents[0]]  # shared by all allies
        return next_state, self._timestep(obs, next_state, reward)

    def episode_reward_scale(self, units) -> jax.Array | float:
        """The SMAC reward scale of the episode of `units` (jaxmarl's unit state, `env_state.state`): the
        map's number, or on a drawn map the one its enemies' types give (their full health is the health
        reset gave them; the types never change within an episode)."""
        if not self.drawn:
            return self.smac_reward_scale
        enemy_full_health = self.smax.unit_type_health[units.unit_types[self.n_agents :]]  # [M]
        return smac_reward_scale(self.n_enemies, jnp.sum(enemy_full_health))

    def avail_actions(self, env_state: EnvState) -> jax.Array:
        """[N, n_actions] bool. Dead units may only "stop"; attacks need a living enemy in range."""
        masks = self.smax.get_avail_actions(env_state)
        return jnp.stack([masks[agent] for agent in self.smax.agents]).astype(bool)

    # -- internals -----------------------------------------------------------------------------------

    def _timestep(self, obs: dict, env_state: EnvState, reward: jax.Array) -> TimeStep:
        units = env_state.state
        allies_alive = units.unit_alive[: self.n_agents]  # [N]
        enemies_alive = units.unit_alive[self.n_agents :]  # [M]
        all_allies_dead = ~jnp.any(allies_alive)
        all_enemies_dead = ~jnp.any(enemies_alive)
        terminated = all_allies_dead | all_enemies_dead
        return TimeStep(
            obs=jnp.stack([obs[agent] for agent in self.smax.agents]).astype(jnp.float32),  # [N, obs_dim]
            state=self._global_state(units),  # [state_dim]
            avail_actions=self.avail_actions(env_state),  # [N, A]
            reward=jnp.asarray(reward, jnp.float32),
            terminated=terminated,
            truncated=(units.step >= self.episode_limit) & ~terminated,
            won=all_enemies_dead & ~all_allies_dead,
        )

    def _global_state(self, units) -> jax.Array:
        n_units = self.n_agents + self.n_enemies
        features = jax.vmap(self.smax._get_own_features, in_axes=(None, 0))(units, jnp.arange(n_units))
        return features.reshape(-1).astype(jnp.float32)  # [n_units * own features]

    def _smac_reward(self, before, after, signed: bool) -> jax.Array:
        """SMAC's shaped reward: enemy health lost + kill bonus + win bonus, scaled.

        Unsigned (SMAC's default, reward_only_positive=True) the team's own losses cost nothing; signed
        (reward_only_positive=False) they are subtracted at half weight: allies' lost health and 10 per ally
        killed, times SMAC_NEGATIVE_SCALE. Either way the best return is SMAC_MAX_RETURN.
        """
        n = self.n_agents
        damage_dealt, kills = self._losses(before, after, slice(n, None))
        # the bonus goes to the step that wins, once (a step after the end must not pay it again)
        won_now = jnp.any(before.unit_alive[n:]) & ~jnp.any(after.unit_alive[n:]) & jnp.any(after.unit_alive[:n])
        raw = damage_dealt + SMAC_KILL_BONUS * kills + SMAC_WIN_BONUS * won_now
        if signed:
            damage_taken, deaths = self._losses(before, after, slice(None, n))
            raw = raw - SMAC_NEGATIVE_SCALE * (damage_taken + SMAC_KILL_BONUS * deaths)
        return raw * self.episode_reward_scale(before)

    @staticmethod
    def _losses(before, after, team: slice) -> tuple[jax.Array, jax.Array]:
        """-> (health points the team lost this step, units of the team killed this step)."""
        health_lost = jnp.sum(jnp.maximum(before.unit_health[team] - after.unit_health[team], 0.0))
        killed = jnp.sum(before.unit_alive[team] & ~after.unit_alive[team])
        return health_lost, killed
