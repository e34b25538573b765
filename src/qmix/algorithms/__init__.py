"""The algorithm registry: a name, a factory `(settings, EnvSpec) -> Algorithm`, its settings class.

Adding an algorithm: a package beside value_decomposition/ (its settings class and the functions of
algorithms/base.py) and one `ALGORITHMS.add` line here, its factory named "module:attribute" so that it
is imported only when a run builds it (listing and configuring import no JAX). A new mixer of the
value-decomposition family needs no line here: its `MIXERS.add(..., algorithm="name")` line makes it an
algorithm. Facts: `settings` (the class), `family` (its presets' block), `uses_replay` (False: on-policy).
"""

from __future__ import annotations

import importlib

from qmix.algorithms.coma.settings import COMASettings
from qmix.algorithms.independent_ppo.settings import IndependentPPOSettings
from qmix.algorithms.pqn.settings import PQNSettings
from qmix.algorithms.value_decomposition.settings import settings_with_mixer
from qmix.algorithms.weighted_qmix.settings import WeightingSettings
from qmix.nets.mixer_registry import MIXERS
from qmix.registry import Registry


class WithMixer:
    """A factory for a class of (settings, spec, mixer) built with one mixer: the class, named
    "module:Class", is imported when the factory is called."""

    def __init__(self, target: str, mixer: str):
        self.target, self.mixer = target, mixer

    def __call__(self, settings, spec):
        module, _, name = self.target.partition(":")
        return getattr(importlib.import_module(module), name)(settings, spec, mixer=self.mixer)


VALUE_DECOMPOSITION = "qmix.algorithms.value_decomposition.algorithm:ValueDecomposition"


def _value_decomposition_algorithms(algorithms: Registry) -> None:
    """Every mixer that names an algorithm is trained under that name by the value-decomposition family,
    with the family's settings and the mixer's own (if it declares any)."""
    for mixer in MIXERS:
        name = mixer.facts.get("algorithm")
        if name and name not in algorithms:
            algorithms.add(name, WithMixer(VALUE_DECOMPOSITION, mixer.name), mixer.algorithm_description,
                           settings=settings_with_mixer(mixer.facts.get("settings")), mixer=mixer.name,
                           family="value_decomposition", uses_replay=True)


ALGORITHMS: Registry = Registry("algorithm", derive=_value_decomposition_algorithms)
_value_decomposition_algorithms(ALGORITHMS)  # the paper's algorithms first in listings
# Algorithms of other families: one ALGORITHMS.add(name, "module:Class", description, settings=..., family=...,
# uses_replay=...) line each.
ALGORITHMS.add("cw_qmix", "qmix.algorithms.weighted_qmix.algorithm:CentrallyWeightedQMIX",
               "CW-QMIX: QMIX weighted towards its greedy and better joint actions, beside an unrestricted Q-hat*",
               settings=settings_with_mixer(WeightingSettings), family="value_decomposition", uses_replay=True)
ALGORITHMS.add("ow_qmix", "qmix.algorithms.weighted_qmix.algorithm:OptimisticallyWeightedQMIX",
               "OW-QMIX: QMIX weighted towards the joint actions it underestimates, beside an unrestricted Q-hat*",
               settings=settings_with_mixer(WeightingSettings), family="value_decomposition", uses_replay=True)
ALGORITHMS.add("ippo", "qmix.algorithms.independent_ppo.algorithm:IndependentPPO",
               "IPPO: independent PPO actors and critics, shared across agents (on-policy)",
               settings=IndependentPPOSettings, family="independent_ppo", uses_replay=False)
ALGORITHMS.add("coma", "qmix.algorithms.coma.algorithm:COMA",
               "COMA: stochastic actors, a centralised critic's counterfactual baseline (on-policy)",
               settings=COMASettings, family="coma", uses_replay=False)

for mixer in ("vdn", "qmix"):  # PQN-style training of a value-decomposition mixer
    ALGORITHMS.add(f"pqn_{mixer}", WithMixer("qmix.algorithms.pqn.algorithm:PQN", mixer),
                   f"PQN-{mixer.upper()}: {mixer.upper()} learned PQN-style: many environments, Q(lambda), LayerNorm, "
                   "no replay or target network (on-policy)", settings=PQNSettings, mixer=mixer, family="pqn",
                   uses_replay=False)


def make_algorithm(config, spec):
    """The algorithm a config names, built for an environment with `spec`."""
    return ALGORITHMS.get(config.alg)(config.algorithm, spec)
