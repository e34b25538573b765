"""FLOPs of a JAX function, counted on its jaxpr with every loop body multiplied by its trip count.

    python benchmarks/flop_count.py    # the undercount below, shown on a 1-, 10- and 100-step scan

XLA's cost analysis (`compiled.cost_analysis()["flops"]`) and `jax.experimental.roofline` count the body
of a `scan` once, however many steps it runs, so for a recurrent learner (a GRU unrolled over every slot,
forward and backward) they undercount by about the unroll's length. Here:
- a matrix product (`dot_general`) costs 2 x (the left operand's elements) x (the right operand's free
  elements), the multiply-adds a matmul peak is measured in;
- every other computing primitive costs one operation per element of its largest operand or result
  (a reduction reads every input once; "element-wise", a rough figure kept apart); moving data
  (reshapes, slices, gathers, broadcasts, ...) costs nothing;
- a `scan` body counts `length` times; of a `cond`'s branches, the costliest; a `while` body once
  (its trip count is unknown until it runs, so `loops_unbounded` says how many there were).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import jax
import jax.numpy as jnp
from jax.extend import core as jax_core

MOVES_DATA = {"broadcast_in_dim", "reshape", "transpose", "squeeze", "expand_dims", "slice", "dynamic_slice",
              "dynamic_update_slice", "concatenate", "gather", "scatter", "pad", "iota", "copy",
              "convert_element_type", "select_n", "rev", "stop_gradient"}


@dataclass
class FlopCount:
    matmul: float = 0.0
    elementwise: float = 0.0
    loops_unbounded: int = 0

    def scaled(self, factor: float) -> FlopCount:
        return FlopCount(self.matmul * factor, self.elementwise * factor, self.loops_unbounded)

    def __add__(self, other: FlopCount) -> FlopCount:
        return FlopCount(self.matmul + other.matmul, self.elementwise + other.elementwise,
                         self.loops_unbounded + other.loops_unbounded)


def _matmul_flops(eqn) -> float:
    lhs, rhs = (v.aval.shape for v in eqn.invars)
    (_, rhs_contract), (_, rhs_batch) = eqn.params["dimension_numbers"]
    rhs_free = [size for axis, size in enumerate(rhs) if axis not in (*rhs_contract, *rhs_batch)]
    return 2.0 * math.prod(lhs) * math.prod(rhs_free)


def _sub_jaxprs(params: dict):
    """The jaxprs an equation calls (pjit, custom_jvp/vjp, remat, ...), whatever the parameter's name."""
    for value in params.values():
        for item in value if isinstance(value, (tuple, list)) else (value,):
            if isinstance(item, jax_core.ClosedJaxpr):
                yield item.jaxpr
            elif isinstance(item, jax_core.Jaxpr):
                yield item


def count_jaxpr(jaxpr) -> FlopCount:
    total = FlopCount()
    for eqn in jaxpr.eqns:
        name = eqn.primitive.name
        if name == "dot_general":
            total += FlopCount(matmul=_matmul_flops(eqn))
        elif name == "scan":
            total += count_jaxpr(eqn.params["jaxpr"].jaxpr).scaled(eqn.params["length"])
        elif name == "cond":
            branches = [count_jaxpr(b.jaxpr) for b in eqn.params["branches"]]
            total += max(branches, key=lambda c: c.matmul + c.elementwise)
        elif name == "while":
            total += count_jaxpr(eqn.params["body_jaxpr"].jaxpr) + FlopCount(loops_unbounded=1)
        else:
            called = list(_sub_jaxprs(eqn.params))
            if called:
                for sub in called:
                    total += count_jaxpr(sub)
            elif name not in MOVES_DATA:
                sizes = [math.prod(v.aval.shape) for v in (*eqn.invars, *eqn.outvars) if hasattr(v.aval, "shape")]
                total += FlopCount(elementwise=float(max(sizes, default=0)))
    return total


def count_flops(fn, *args) -> FlopCount:
    """The FLOPs of one call of `fn(*args)` (a plain or jitted function)."""
    return count_jaxpr(jax.make_jaxpr(fn)(*args).jaxpr)


def main() -> None:
    """The undercount, shown: a recurrence of 1, 10 and 100 steps, counted here and by XLA."""
    hidden, weights = jnp.ones((128, 64)), jnp.ones((64, 64))
    print("| scan steps | matmul FLOPs, counted here | XLA's cost analysis |")
    print("|---|---|---|")
    for steps in (1, 10, 100):
        def recurrence(h, w, steps=steps):
            return jax.lax.scan(lambda h, _: (jnp.tanh(h @ w), None), h, None, length=steps)[0]

        ours = count_flops(recurrence, hidden, weights).matmul
        xla = jax.jit(recurrence).lower(hidden, weights).compile().cost_analysis()["flops"]
        print(f"| {steps} | {ours:,.0f} | {xla:,.0f} |")


if __name__ == "__main__":
    main()
