"""What a config names, built from the registries: its environment, its algorithm, and the trainer that
runs one on the other."""

from __future__ import annotations

from qmix.algorithms import make_algorithm
from qmix.envs import make_env
from qmix.episodes import EnvSpec
from qmix.learn.loop import Trainer


def make_trainer(config) -> Trainer:
    env = make_env(config)
    return Trainer(config, env, make_algorithm(config, EnvSpec.of(env)), lambda seed: make_env(config, seed))
