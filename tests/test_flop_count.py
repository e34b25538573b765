"""benchmarks/flop_count.py: FLOPs with loop bodies counted as often as they run (no compiling: jaxprs only)."""

import importlib.util
import sys
from pathlib import Path

import jax
import jax.numpy as jnp

_SPEC = importlib.util.spec_from_file_location(
    "flop_count", Path(__file__).parents[1] / "benchmarks" / "flop_count.py")
flop_count = sys.modules.setdefault("flop_count", importlib.util.module_from_spec(_SPEC))
_SPEC.loader.exec_module(flop_count)

ROWS, WIDTH = 16, 8
MATMUL = 2 * ROWS * WIDTH * WIDTH  # one [16, 8] x [8, 8] product


def recurrence(hidden, weights, steps):
    def step(h, _):
        return jnp.tanh(h @ weights), None

    return jax.lax.scan(step, hidden, None, length=steps)[0].sum()


def test_a_scan_body_counts_once_per_step():
    hidden, weights = jnp.ones((ROWS, WIDTH)), jnp.ones((WIDTH, WIDTH))
    for steps in (1, 7):
        count = flop_count.count_flops(lambda h, w, n=steps: recurrence(h, w, n), hidden, weights)
        assert count.matmul == steps * MATMUL
        assert count.elementwise == steps * ROWS * WIDTH + ROWS * WIDTH  # tanh per step, then the sum's inputs
        assert count.loops_unbounded == 0


def test_a_gradient_costs_its_backward_products_too():
    hidden, weights = jnp.ones((ROWS, WIDTH)), jnp.ones((WIDTH, WIDTH))
    grad = jax.jit(jax.grad(lambda h, w: recurrence(h, w, 5), argnums=1))  # inside a jit: counted through it
    # forward h @ w, backward: d/dh (g @ w^T) and d/dw (h^T @ g), each the same size, per step
    assert flop_count.count_flops(grad, hidden, weights).matmul == 3 * 5 * MATMUL


def test_a_cond_counts_its_costliest_branch_and_a_while_body_once():
    x, w = jnp.ones((ROWS, WIDTH)), jnp.ones((WIDTH, WIDTH))

    def branchy(x, w, pick):
        return jax.lax.cond(pick, lambda x: (x @ w) @ w, lambda x: x @ w, x)

    assert flop_count.count_flops(branchy, x, w, True).matmul == 2 * MATMUL

    def looped(x, w):
        return jax.lax.while_loop(lambda c: c[0] < 3, lambda c: (c[0] + 1, c[1] @ w), (0, x))[1]

    count = flop_count.count_flops(looped, x, w)
    assert count.matmul == MATMUL and count.loops_unbounded == 1
