"""Episodes packed into fewer rows (packing.py): where each episode lands, and that the loss of a packed
batch is the loss of the padded one, to float error, for every value-decomposition member, on a batch of
mixed lengths with terminations, truncations, padding and unavailable actions."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from qmix.algorithms import make_algorithm
from qmix.config import build_config
from qmix.episodes import EnvSpec, Episodes
from qmix.packing import pack_episodes, row_counts, rows_that_fit

SPEC = EnvSpec(n_agents=3, n_actions=4, obs_dim=5, state_dim=6, episode_limit=10)


def mixed_episodes(key, lengths, truncated_ones):
    """Whole episodes of the given lengths (random contents, a random unavailable action per agent where
    possible); episode i ends by the time limit if i is in `truncated_ones`, else by termination."""
    B, T, N, A = len(lengths), SPEC.episode_limit, SPEC.n_agents, SPEC.n_actions
    keys = jax.random.split(key, 5)
    filled = jnp.arange(T)[None] < jnp.asarray(lengths)[:, None]
    last = jax.nn.one_hot(jnp.asarray(lengths) - 1, T, dtype=bool)
    ends_truncated = jnp.isin(jnp.arange(B), jnp.asarray(truncated_ones))[:, None]
    avail = jax.random.uniform(keys[0], (B, T + 1, N, A)) > 0.3
    avail = avail.at[..., 0].set(True)
    slot_real = jnp.arange(T + 1)[None] <= jnp.asarray(lengths)[:, None]
    avail = avail & slot_real[..., None, None]
    logits = jnp.where(avail[:, :-1], 0.0, -jnp.inf)
    actions = jnp.where(filled[..., None], jax.random.categorical(keys[1], logits), 0).astype(jnp.int32)
    return Episodes(obs=jax.random.normal(keys[2], (B, T + 1, N, SPEC.obs_dim)) * slot_real[..., None, None],
                    state=jax.random.normal(keys[3], (B, T + 1, SPEC.state_dim)) * slot_real[..., None],
                    avail=avail, actions=actions,
                    rewards=jax.random.normal(keys[4], (B, T)) * filled,
                    terminated=last & ~ends_truncated, truncated=last & ends_truncated, filled=filled)


LENGTHS = (3, 1, 10, 5, 2, 7, 4, 10)  # two at the limit (truncated), the rest shorter


@functools.cache  # built when first used, as one compiled program: not at collection, in every process
def batch() -> Episodes:
    return jax.jit(mixed_episodes, static_argnums=(1, 2))(jax.random.PRNGKey(0), LENGTHS, (2, 7, 3))


def test_each_episode_lands_whole_and_in_order_with_its_start_and_an_unfilled_last_slot():
    packed = jax.device_get(pack_episodes(batch(), rows=5))
    b = jax.device_get(batch())
    found = 0
    for r in range(5):
        starts = np.flatnonzero(packed.starts[r])
        for s in starts:
            match = [i for i, n in enumerate(LENGTHS) if s + n < 11 and np.array_equal(packed.obs[r, s], b.obs[i, 0])
                     and np.any(b.obs[i, 0])]
            if not match:
                continue  # an unused slot
            i, n = match[0], LENGTHS[match[0]]
            found += 1
            np.testing.assert_array_equal(packed.obs[r, s:s + n + 1], b.obs[i, :n + 1])  # its slots, whole
            np.testing.assert_array_equal(packed.avail[r, s:s + n + 1], b.avail[i, :n + 1])
            np.testing.assert_array_equal(packed.actions[r, s:s + n], b.actions[i, :n])
            np.testing.assert_array_equal(packed.rewards[r, s:s + n], b.rewards[i, :n])
            np.testing.assert_array_equal(packed.terminated[r, s:s + n], b.terminated[i, :n])
            np.testing.assert_array_equal(packed.truncated[r, s:s + n], b.truncated[i, :n])
            assert packed.filled[r, s:s + n].all() and not packed.starts[r, s + 1:s + n + 1].any()
            if s + n < 10:  # the step in its last slot is not a step: it adds nothing and cuts the trace
                assert not packed.filled[r, s + n] and packed.rewards[r, s + n] == 0
    assert found == len(LENGTHS)
    assert packed.filled.sum() == sum(LENGTHS)


def test_the_row_counts_and_what_fits():
    assert row_counts(128, 4) == [16, 32, 64, 128]  # an eighth of the batch up to all of it, x2 each
    assert row_counts(128, 8) == [16, 22, 29, 39, 53, 71, 95, 128]  # x1.35 each
    assert row_counts(256, 8) == [32, 43, 58, 78, 105, 141, 190, 256]
    assert row_counts(3, 4) == [1, 3] and row_counts(4, 2) == [1, 4] and row_counts(5, 1) == [5]
    lengths = jnp.asarray(LENGTHS)  # 50 slots with each episode's last; 11 slots per row
    fits = rows_that_fit(lengths, [2, 4, 5, 8], slots=11)
    assert fits.tolist() == [False, False, True, True]  # 4 rows hold 44 slots; in 5, longest first: 11 at most
    assert rows_that_fit(jnp.asarray([10, 10, 10]), [1, 2, 3], slots=11).tolist() == [False, False, True]


SLOW = pytest.mark.slow  # a compile each: the default set keeps QMIX, QPLEX and Weighted QMIX


@pytest.mark.parametrize("alg, settings", [
    ("qmix", {"td_lambda": 0.6}),
    pytest.param("qmix", {"td_lambda": 0.0, "double_q": False, "state_last_action": True}, marks=SLOW),
    pytest.param("vdn", {"td_lambda": 1.0}, marks=SLOW),
    pytest.param("iql", {"td_lambda": 0.6}, marks=SLOW),
    ("qplex", {"td_lambda": 0.6}),
    ("cw_qmix", {"td_lambda": 0.6}),
])
def test_the_loss_and_its_gradient_are_those_of_the_padded_batch(alg, settings):
    config = build_config(alg=alg, map="3m", agent_hidden_dim=8, mixing_embed_dim=4, hypernet_embed_dim=8,
                          **({"central_agent_hidden_dim": 8, "central_mixing_embed_dim": 8} if alg == "cw_qmix" else {}),
                          **settings)
    algorithm = make_algorithm(config, SPEC)
    state = algorithm.init(jax.random.PRNGKey(1))
    target = jax.tree.map(lambda x: x * 0.9, state.params)  # a target network unlike the online one
    grad_loss = jax.jit(jax.value_and_grad(algorithm.loss, has_aux=True))
    (padded, _), padded_grads = grad_loss(state.params, target, batch())
    for rows in (6, 8):
        (packed, _), packed_grads = grad_loss(state.params, target, pack_episodes(batch(), rows))
        np.testing.assert_allclose(float(packed), float(padded), rtol=1e-5)
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6), packed_grads, padded_grads)


def test_an_update_packs_a_batch_of_short_episodes_into_fewer_rows():
    """The update picks the fewest rows that hold the batch: the same step as one row per episode."""
    results = []
    for count in (1, 4):  # time_buckets=1: one row per episode
        config = build_config(alg="qmix", map="3m", time_buckets=count, agent_hidden_dim=8, td_lambda=0.6)
        algorithm = make_algorithm(config, SPEC)
        state = algorithm.init(jax.random.PRNGKey(0))
        new_state, metrics, _ = jax.jit(algorithm.update)(state, batch(), jax.random.PRNGKey(1))
        results.append((float(metrics["loss"]), new_state.params))
    np.testing.assert_allclose(results[0][0], results[1][0], rtol=1e-5)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6), results[0][1], results[1][1])
