"""The algorithm registry: a name, a factory `(settings, EnvSpec) -> Algorithm`, its settings class.

Adding an algorithm: a package beside value_decomposition/ (its settings class and the functions of
algorithms/base.py) and one `ALGORITHMS.add` line here.
"""

from __future__ import annotations

from functools import partial

from qmix.algorithms.value_decomposition.algorithm import ValueDecomposition
from qmix.algorithms.value_decomposition.settings import ValueDecompositionSettings
from qmix.registry import Registry

ALGORITHMS: Registry = Registry("algorithm")


def _value_decomposition(name: str, mixer: str, description: str) -> None:
    ALGORITHMS.add(name, partial(ValueDecomposition, mixer=mixer), description, settings=ValueDecompositionSettings,
                   mixer=mixer)


_value_decomposition("qmix", "qmix", "QMIX: a monotonic mixing network conditioned on the state")
_value_decomposition("vdn", "vdn", "VDN: Q_tot is the sum of the agents' utilities")
_value_decomposition("iql", "none", "IQL: independent Q-learners, no mixing")
_value_decomposition("qmix_ns", "qmix_ns", "QMIX-NS: QMIX without the state in the mixing weights (ablation)")
_value_decomposition("qmix_lin", "qmix_lin", "QMIX-Lin: a linear state-conditioned mix plus V(s) (ablation)")
_value_decomposition("vdn_s", "vdn_s", "VDN-S: the sum plus a state-dependent bias V(s) (ablation)")


def make_algorithm(config, spec):
    """The algorithm a config names, built for an environment with `spec`."""
    return ALGORITHMS.get(config.alg)(config.algorithm, spec)
