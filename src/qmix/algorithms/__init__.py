"""The algorithm registry: a name, a factory `(settings, EnvSpec) -> Algorithm`, its settings class.

Adding an algorithm: a package beside value_decomposition/ (its settings class and the functions of
algorithms/base.py) and one `ALGORITHMS.add` line here. A new mixer of the value-decomposition family
needs no line here: its `MIXERS.add(..., algorithm="name")` line makes it an algorithm.
"""

from __future__ import annotations

from functools import partial

from qmix.algorithms.independent_ppo.algorithm import IndependentPPO
from qmix.algorithms.independent_ppo.settings import IndependentPPOSettings
from qmix.algorithms.value_decomposition.algorithm import ValueDecomposition
from qmix.algorithms.value_decomposition.settings import settings_with_mixer
from qmix.nets.mixers import MIXERS
from qmix.registry import Registry


def _value_decomposition_algorithms(algorithms: Registry) -> None:
    """Every mixer that names an algorithm is trained under that name by the value-decomposition family,
    with the family's settings and the mixer's own (if it declares any)."""
    for mixer in MIXERS:
        name = mixer.facts.get("algorithm")
        if name and name not in algorithms:
            algorithms.add(name, partial(ValueDecomposition, mixer=mixer.name), mixer.algorithm_description,
                           settings=settings_with_mixer(mixer.facts.get("settings")), mixer=mixer.name,
                           family="value_decomposition")


ALGORITHMS: Registry = Registry("algorithm", derive=_value_decomposition_algorithms)
_value_decomposition_algorithms(ALGORITHMS)  # the paper's algorithms first in listings
# Algorithms of other families: one ALGORITHMS.add(name, factory, description, settings=SettingsClass) line each.
ALGORITHMS.add("ippo", IndependentPPO, "IPPO: independent PPO actors and critics, shared across agents (on-policy)",
               settings=IndependentPPOSettings, family="independent_ppo")


def make_algorithm(config, spec):
    """The algorithm a config names, built for an environment with `spec`."""
    return ALGORITHMS.get(config.alg)(config.algorithm, spec)
