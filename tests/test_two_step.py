"""The paper's two-step game: QMIX represents it exactly and gets 8; VDN cannot and settles for 7."""

import numpy as np
import pytest

from qmix.envs.two_step import TwoStepGame
from qmix.two_step import PAPER_Q_TOT, run_two_step


def test_game_rules():
    import jax
    import jax.numpy as jnp

    env = TwoStepGame()
    key = jax.random.PRNGKey(0)
    state, first = env.reset(key)
    assert first.obs.shape == (2, 3) and float(first.reward) == 0.0
    for a1, cell in ((0, 1), (1, 2)):
        s1, ts1 = env.step(key, state, jnp.array([a1, 1]))
        assert int(s1.cell) == cell and float(ts1.reward) == 0.0 and not bool(ts1.terminated)
    s1, _ = env.step(key, state, jnp.array([1, 0]))
    _, end = env.step(key, s1, jnp.array([1, 1]))
    assert float(end.reward) == 8.0 and bool(end.terminated) and not bool(end.truncated)


@pytest.fixture(scope="module")
def qmix_results():
    return run_two_step("qmix", seed=0, num_seeds=5)


@pytest.fixture(scope="module")
def vdn_results():
    return run_two_step("vdn", seed=0, num_seeds=5)


@pytest.mark.slow  # learning tests: 5 seeds x 5,000 episodes each
def test_qmix_learns_the_optimal_policy_and_the_paper_values(qmix_results):
    optimal = [r for r in qmix_results if r.greedy_return == 8.0]
    assert len(optimal) >= 4, [r.greedy_return for r in qmix_results]
    for r in optimal:
        error = np.abs(r.q_tot - PAPER_Q_TOT["qmix"]).max()
        assert error <= 0.3, f"seed {r.seed}: a Q_tot cell is {error:.2f} from the paper's\n{r.q_tot}"


@pytest.mark.slow
def test_vdn_settles_for_seven(vdn_results):
    assert [r.greedy_return for r in vdn_results] == [7.0] * 5
