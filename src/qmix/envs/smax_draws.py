"""What a SMACv2-style map draws every episode, in JAX: each unit's type and the start positions.

SMAX's reset draws through two objects, `unit_type_generator` and `position_generator`, each with
`generate(key)`; `install_draws` puts these in their place on a drawn map (docs/smax.md, "SMACv2-style
maps"). SMAX's own type draw is uniform over every type in its table and leaves enemies beyond the allies'
number as marines (type 0); `TeamDraw` draws every unit from the map's weights.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from qmix.envs.smax_maps import UNIT_TYPE_INDEX, DrawnMapSpec

SPAWN_NOISE = 2.0  # units spawned on one point spread uniformly by +-this (SMAX's own start noise)
EDGE_MARGIN = 1.0  # no start closer than this to the map's edge: a SMAX unit touching it dies
SURROUND_OFFSET = 2.0  # SMACv2: the enemy groups come from the corners toward the centre +- this, diagonally
MAX_GROUPS = 4  # SMACv2: 1 to 4 enemy groups, each on its own diagonal


class TeamDraw:
    """SMACv2's weighted teams: the allies' types i.i.d. from the weights, the enemies the same types in the
    same order, every enemy beyond the allies' number drawn from the weights too.

    generate(key) -> unit types [U] uint8, allies first (U = n_allies + n_enemies), indices of UNIT_TYPES.
    """

    def __init__(self, spec: DrawnMapSpec):
        self.n_allies, self.n_enemies = spec.n_allies, spec.n_enemies
        self.types = np.array([UNIT_TYPE_INDEX[name] for name in spec.unit_types], np.uint8)  # [T]
        self.log_weights = np.log(np.array(spec.weights, np.float32))  # [T]

    def generate(self, key: jax.Array) -> jax.Array:
        ally_key, extra_key = jax.random.split(key)
        n_extra = max(self.n_enemies - self.n_allies, 0)
        allies = jax.random.categorical(ally_key, self.log_weights, shape=(self.n_allies,))  # [N]
        extra = jax.random.categorical(extra_key, self.log_weights, shape=(n_extra,))  # [M - N]
        enemies = jnp.concatenate([allies[: self.n_enemies], extra])  # [M]
        return jnp.asarray(self.types)[jnp.concatenate([allies, enemies])]


class Smacv2Positions:
    """SMACv2's start positions on SMAX's map, each episode surrounded or reflected with probability 1/2.

    Reflected: the allies uniform on the left half, short of the middle by 1 (SMACv2's buffer), each enemy
    the mirror image of the ally of its index, extra enemies uniform on the right half. Surrounded: the allies at
    the centre; 1 to 4 enemy groups, each on its own diagonal, a uniform fraction of the way from the corner
    to the centre, every enemy in one of them uniformly. SC2 spreads units spawned on one point and keeps
    them on the map; SMAX does neither, so those points get SMAX's start noise, and every start is drawn at
    least EDGE_MARGIN inside the map.

    generate(key) -> positions [U, 2] (x, y), allies first.
    """

    def __init__(self, n_allies: int, n_enemies: int, width: float, height: float):
        self.n_allies, self.n_enemies = n_allies, n_enemies
        self.size = jnp.array([width, height], jnp.float32)  # [2]

    def generate(self, key: jax.Array) -> jax.Array:
        choice_key, surrounded_key, reflected_key = jax.random.split(key, 3)
        surrounded = jax.random.uniform(choice_key) < 0.5
        return jnp.where(surrounded, self.surrounded(surrounded_key), self.reflected(reflected_key))

    def _uniform(self, key: jax.Array, n: int, low: jax.Array, high: jax.Array) -> jax.Array:
        return jax.random.uniform(key, (n, 2), minval=low, maxval=high)  # [n, 2]

    def reflected(self, key: jax.Array) -> jax.Array:
        ally_key, extra_key = jax.random.split(key)
        width, height = self.size
        low = jnp.full(2, EDGE_MARGIN)
        allies = self._uniform(ally_key, self.n_allies, low, jnp.stack([width / 2 - 1, height - EDGE_MARGIN]))
        mirrored = allies[: self.n_enemies].at[:, 0].set(width - allies[: self.n_enemies, 0])
        n_extra = max(self.n_enemies - self.n_allies, 0)
        extra = self._uniform(extra_key, n_extra, jnp.stack([width / 2, EDGE_MARGIN]), self.size - EDGE_MARGIN)
        return jnp.concatenate([allies, mirrored, extra])  # [U, 2]

    def surrounded(self, key: jax.Array) -> jax.Array:
        count_key, member_key, diagonal_key, fraction_key, noise_key = jax.random.split(key, 5)
        centre = self.size / 2
        corners = jnp.array([[0.0, 0.0], [0.0, 1.0], [1.0, 1.0], [1.0, 0.0]]) * self.size  # [4, 2]
        inner = centre + SURROUND_OFFSET * jnp.sign(corners - centre)  # [4, 2] the centre, moved toward each
        n_groups = jax.random.randint(count_key, (), 1, MAX_GROUPS + 1)
        diagonals = jax.random.permutation(diagonal_key, MAX_GROUPS)  # group g comes down diagonal diagonals[g]
        fraction = jax.random.uniform(fraction_key, (MAX_GROUPS, 1))  # [4, 1] 0 at the corner, 1 inside
        group_points = fraction * inner[diagonals] + (1 - fraction) * corners[diagonals]  # [4, 2]
        # a group at its corner starts as close to it as its noise allows (SC2 keeps units on the map)
        group_points = jnp.clip(group_points, EDGE_MARGIN + SPAWN_NOISE, self.size - EDGE_MARGIN - SPAWN_NOISE)
        group = jax.random.randint(member_key, (self.n_enemies,), 0, n_groups)  # [M] each enemy's group
        points = jnp.concatenate([jnp.broadcast_to(centre, (self.n_allies, 2)), group_points[group]])  # [U, 2]
        noise = jax.random.uniform(noise_key, points.shape, minval=-SPAWN_NOISE, maxval=SPAWN_NOISE)
        return points + noise


def install_draws(smax, spec: DrawnMapSpec) -> None:
    """Make jaxmarl's SMAX `smax` (built with a Scenario whose two smacv2 flags are set) draw as `spec` says.
    With start_positions "smax", SMAX's own position draw stays."""
    smax.unit_type_generator = TeamDraw(spec)
    if spec.start_positions == "smacv2":
        smax.position_generator = Smacv2Positions(spec.n_allies, spec.n_enemies, smax.map_width, smax.map_height)
