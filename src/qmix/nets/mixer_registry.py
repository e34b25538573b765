"""The mixer registry: each mixer's name, line, facts and factory ("module:function", imported when a run
builds it), so that listing algorithms imports no JAX. The mixers themselves are in mixers.py.

Facts: `monotonic` (dQ_tot/dQ_a >= 0, checked by the contract tests), `per_agent` (K = N outputs: every
agent its own target), `algorithm` and `algorithm_description` (the name and line the value-decomposition
family trains it under, `qmix algs`), `settings` (a class of settings of the mixer's own).
"""

from __future__ import annotations

from qmix.nets.qmix_settings import QMixerSettings
from qmix.nets.qplex_settings import QPLEXSettings
from qmix.registry import Registry

MIXERS: Registry = Registry("mixer")
MIXERS.add("qmix", "qmix.nets.mixers:make_qmix",
           "a monotonic mixing network whose weights are hypernetworks of the state", monotonic=True,
           settings=QMixerSettings, algorithm="qmix",
           algorithm_description="QMIX: a monotonic mixing network conditioned on the state")
MIXERS.add("vdn", "qmix.nets.mixers:make_vdn", "the sum of the agents' utilities", monotonic=True,
           algorithm="vdn", algorithm_description="VDN: Q_tot is the sum of the agents' utilities")
MIXERS.add("none", "qmix.nets.mixers:make_independent", "no mixing: every agent its own TD target", monotonic=True,
           per_agent=True, algorithm="iql", algorithm_description="IQL: independent Q-learners, no mixing")
MIXERS.add("qmix_ns", "qmix.nets.mixers:make_qmix_ns",
           "QMIX's mixing network with state-independent weights", monotonic=True, algorithm="qmix_ns",
           algorithm_description="QMIX-NS: QMIX without the state in the mixing weights (ablation)")
MIXERS.add("qmix_lin", "qmix.nets.mixers:make_qmix_lin",
           "a state-conditioned non-negative linear mix plus V(s)", monotonic=True, algorithm="qmix_lin",
           algorithm_description="QMIX-Lin: a linear state-conditioned mix plus V(s) (ablation)")
MIXERS.add("vdn_s", "qmix.nets.mixers:make_vdn_s", "the sum plus a state-dependent bias V(s)",
           monotonic=True, algorithm="vdn_s",
           algorithm_description="VDN-S: the sum plus a state-dependent bias V(s) (ablation)")

MIXERS.add("qplex", "qmix.nets.qplex:make_qplex",
           "the duplex dueling mixer: sum of V_i plus attention-weighted advantages over available actions",
           monotonic=False, settings=QPLEXSettings, algorithm="qplex",
           algorithm_description="QPLEX: duplex dueling mixing, V_i plus attention-weighted advantages (IGM)")


def mixer_outputs(name: str, n_agents: int) -> int:
    """K: how many values the mixer returns (N for independent learners, else 1)."""
    return n_agents if MIXERS.entry(name).facts.get("per_agent", False) else 1
