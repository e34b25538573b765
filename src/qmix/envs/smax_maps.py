"""The SMAX maps' facts, free of JAX and jaxmarl (listing maps and checking settings import only this):
the unit types, each map's teams (fixed, or drawn every episode as in SMACv2) and time limit, and how a
map is played (SmaxSettings)."""

from __future__ import annotations

from dataclasses import dataclass

from qmix.paper import PAPER_MAPS
from qmix.settings import check, check_choices, setting

# ---------------------------------------------------------------------------------------------------
# Unit types


@dataclass(frozen=True)
class UnitType:
    """One unit type's stats in SMAX units (distance: SC2 map units; time: seconds; see docs/smax.md)."""

    name: str
    shorthand: str
    velocity: float  # distance per second
    attack: float  # damage of one attack (health + shield points)
    attack_range: float
    sight_range: float
    radius: float
    health: float  # SC2 hit points + shields
    weapon_cooldown: float  # seconds between attacks


# SMAX's six default unit types, unchanged (a test checks them against jaxmarl's defaults), then the
# colossus, derived from StarCraft II with SMAX's own conventions (docs/smax.md, "The colossus").
COLOSSUS = UnitType(
    "colossus",
    "c",
    velocity=3.15,
    attack=10.0,
    attack_range=7.0,
    sight_range=10.0,
    radius=1.0,
    health=350.0,
    weapon_cooldown=1.07,
)
UNIT_TYPES: tuple[UnitType, ...] = (
    # name, shorthand, velocity, attack, attack_range, sight_range, radius, health, weapon_cooldown
    UnitType("marine", "m", 3.15, 9.0, 5.0, 9.0, 0.375, 45.0, 0.61),
    UnitType("marauder", "M", 2.25, 10.0, 6.0, 10.0, 0.5625, 125.0, 1.07),
    UnitType("stalker", "s", 4.13, 13.0, 6.0, 10.0, 0.625, 160.0, 1.87),
    UnitType("zealot", "Z", 3.15, 8.0, 2.0, 9.0, 0.5, 150.0, 0.86),
    UnitType("zergling", "z", 4.13, 5.0, 2.0, 8.0, 0.375, 35.0, 0.5),
    UnitType("hydralisk", "h", 3.15, 12.0, 5.0, 9.0, 0.625, 80.0, 0.59),
    COLOSSUS,
)
UNIT_TYPE_INDEX = {unit.name: i for i, unit in enumerate(UNIT_TYPES)}


# ---------------------------------------------------------------------------------------------------
# Maps


@dataclass(frozen=True)
class MapSpec:
    """A map: the unit type of each ally and each enemy (in agent order) and SMAC's episode limit."""

    allies: tuple[str, ...]
    enemies: tuple[str, ...]
    episode_limit: int

    @property
    def n_allies(self) -> int:
        return len(self.allies)

    @property
    def n_enemies(self) -> int:
        return len(self.enemies)


def _team(*groups: tuple[int, str]) -> tuple[str, ...]:
    """`_team((3, "stalker"), (5, "zealot"))` -> the unit type of each team member, in order."""
    return tuple(name for count, name in groups for _ in range(count))


def _symmetric(episode_limit: int, *groups: tuple[int, str]) -> MapSpec:
    return MapSpec(_team(*groups), _team(*groups), episode_limit)


# Episode limits are SMAC's, except 5m (not a SMAC map: 60, the limit of 3m, is our choice).
SMAX_MAPS: dict[str, MapSpec] = {
    # the paper's maps
    "3m": _symmetric(60, (3, "marine")),
    "5m": _symmetric(60, (5, "marine")),
    "8m": _symmetric(120, (8, "marine")),
    "2s3z": _symmetric(120, (2, "stalker"), (3, "zealot")),
    "3s5z": _symmetric(150, (3, "stalker"), (5, "zealot")),
    "1c3s5z": _symmetric(180, (1, "colossus"), (3, "stalker"), (5, "zealot")),
    # SMAX's own maps (its randomised smacv2_* ones are in DRAWN_MAPS below)
    "25m": _symmetric(150, (25, "marine")),
    "5m_vs_6m": MapSpec(_team((5, "marine")), _team((6, "marine")), 70),
    "10m_vs_11m": MapSpec(_team((10, "marine")), _team((11, "marine")), 150),
    "27m_vs_30m": MapSpec(_team((27, "marine")), _team((30, "marine")), 180),
    "3s5z_vs_3s6z": MapSpec(_team((3, "stalker"), (5, "zealot")), _team((3, "stalker"), (6, "zealot")), 170),
    "3s_vs_5z": MapSpec(_team((3, "stalker")), _team((5, "zealot")), 250),
    "6h_vs_8z": MapSpec(_team((6, "hydralisk")), _team((8, "zealot")), 150),
}


# ---------------------------------------------------------------------------------------------------
# SMACv2-style maps: the team sizes are fixed, every unit's type and the start positions are drawn per episode

START_POSITIONS = ("smax", "smacv2")  # SMAX's own surround-or-reflect draw, or SMACv2's (docs/smax.md)
SMACV2_EPISODE_LIMIT = 200  # SMACv2's limit for its 10gen_* maps, whatever the team sizes
# SMACv2's unit types and their probabilities per race (Ellis et al., 2023; its sc2_gen_*.yaml configs).
SMACV2_RACES: dict[str, tuple[tuple[str, float], ...]] = {
    "protoss": (("stalker", 0.45), ("zealot", 0.45), ("colossus", 0.1)),
    "terran": (("marine", 0.45), ("marauder", 0.45), ("medivac", 0.1)),
    "zerg": (("zergling", 0.45), ("hydralisk", 0.45), ("baneling", 0.1)),
}


@dataclass(frozen=True)
class DrawnMapSpec:
    """A map whose units' types and start positions are drawn every episode: the allies' types i.i.d. from
    `weights`, the enemies the same types in the same order, any enemies beyond the allies' number drawn
    too (SMACv2's weighted teams)."""

    n_allies: int
    n_enemies: int
    episode_limit: int
    unit_types: tuple[str, ...]  # [T] the types drawn from
    weights: tuple[float, ...]  # [T] their probabilities, summing to 1
    start_positions: str  # one of START_POSITIONS


def race_weights(race: str) -> tuple[tuple[str, ...], tuple[float, ...]]:
    """SMACv2's types of `race` that SMAX has, with SMACv2's probabilities renormalised over them (SMAX has
    no medivac nor baneling; the colossus is this table's own)."""
    kept = [(name, weight) for name, weight in SMACV2_RACES[race] if name in UNIT_TYPE_INDEX]
    total = sum(weight for _, weight in kept)
    return tuple(name for name, _ in kept), tuple(weight / total for _, weight in kept)


def _race_map(race: str, n_allies: int, n_enemies: int) -> DrawnMapSpec:
    return DrawnMapSpec(n_allies, n_enemies, SMACV2_EPISODE_LIMIT, *race_weights(race), "smacv2")


def _smax_smacv2(n_units: int) -> DrawnMapSpec:
    """jaxmarl's smacv2_<n>_units: uniform over SMAX's six types (not the colossus), SMAX's start positions."""
    six = tuple(unit.name for unit in UNIT_TYPES[:6])
    return DrawnMapSpec(n_units, n_units, SMACV2_EPISODE_LIMIT, six, (1 / 6,) * 6, "smax")


DRAWN_MAPS: dict[str, DrawnMapSpec] = {
    **{f"smacv2_{n}_units": _smax_smacv2(n) for n in (5, 10, 20)},
    # SMACv2's own scenario names; 10_vs_11 has more enemies than allies (its 20_vs_20 and 20_vs_23 are left out)
    **{f"{race}_{n}_vs_{m}": _race_map(race, n, m)
       for n, m in ((5, 5), (10, 10), (10, 11)) for race in SMACV2_RACES},
}


# How a map pays its reward (docs/smax.md): SMAC's shaped reward, the same with the team's own losses
# subtracted (SMAC's reward_only_positive=False), or SMAX's native reward.
REWARD_SETTINGS = ("smac", "smac_signed", "smax")


@dataclass(frozen=True)
class SmaxSettings:
    """How a SMAX map is played."""

    reward: str = setting("smac", "smac (SMAC's shaped reward, max return 20), smac_signed (minus half the "
                          "team's own losses) or smax (SMAX's native reward)", REWARD_SETTINGS)
    episode_limit: int | None = setting(None, "time limit in steps (null: the map's own, SMAC's)")

    def validate(self, config) -> None:
        check_choices(self)
        check(self.episode_limit is None or self.episode_limit >= 1,
              f"episode_limit must be at least 1 step (or null for the map's own), got {self.episode_limit}")


def describe_map(name: str) -> str:
    """One line: the teams and the time limit."""
    if name in DRAWN_MAPS:
        return _describe_drawn(DRAWN_MAPS[name])
    spec = SMAX_MAPS[name]

    def team(units: tuple[str, ...]) -> str:
        return " + ".join(f"{units.count(u)} {u}{'s' if units.count(u) > 1 else ''}" for u in dict.fromkeys(units))

    return f"SMAX: {team(spec.allies)} against {team(spec.enemies)}, {spec.episode_limit} steps"


def _describe_drawn(spec: DrawnMapSpec) -> str:
    if spec.start_positions == "smax":  # jaxmarl's own smacv2_* maps
        drawn, starts = "uniformly from SMAX's six", "SMAX's"
    else:
        weights = zip(spec.unit_types, spec.weights, strict=True)
        drawn, starts = ", ".join(f"{name} {weight:.2g}" for name, weight in weights), "SMACv2's"
    return (f"SMAX, SMACv2-style: {spec.n_allies} against {spec.n_enemies}, types drawn per episode ({drawn}), "
            f"{starts} start positions, {spec.episode_limit} steps")


def list_maps() -> list[str]:
    """Every map name SmaxEnv accepts: the paper's maps first, then SMAX's other fixed maps, then the drawn."""
    return [*PAPER_MAPS, *(name for name in SMAX_MAPS if name not in PAPER_MAPS), *DRAWN_MAPS]


def get_map(map_name: str) -> MapSpec | DrawnMapSpec:
    if map_name in DRAWN_MAPS:
        return DRAWN_MAPS[map_name]
    if map_name not in SMAX_MAPS:
        raise ValueError(f"unknown SMAX map {map_name!r}; valid maps: {', '.join(list_maps())}")
    return SMAX_MAPS[map_name]
