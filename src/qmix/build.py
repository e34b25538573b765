"""What a config names, built from the registries: its environment, its algorithm, and the trainer that
runs one on the other."""

from __future__ import annotations

import json
from collections import OrderedDict

from qmix.algorithms import make_algorithm
from qmix.config import SESSION_ONLY_SETTINGS
from qmix.envs import make_env
from qmix.episodes import EnvSpec
from qmix.learn.loop import Trainer

KEPT_TRAINERS = 4  # the trainers a process keeps, newest used first

# A trainer's programs are traced and compiled on first use and kept on it, so the commands one process
# runs on one config (`qmix train` and its final evaluation; evaluate, then render; a notebook calling
# `qmix.load_policy` again) reuse them instead of tracing the same programs again; so do runs that differ only
# in settings no compiled program reads (other seeds, budgets, test and checkpoint schedules).
_kept: OrderedDict[str, Trainer] = OrderedDict()


def make_trainer(config) -> Trainer:
    """The trainer for `config`: one of the last few built in this process for the same compiled programs
    (the same settings, SESSION_ONLY_SETTINGS aside), else a new one: its `config` is the first such run's.
    Host-side environments (real StarCraft II games, closed when a run ends) are never shared. A caller that
    changes its trainer (replaces a method, say) takes `new_trainer` instead, which shares nothing."""
    programs = {k: v for k, v in config.to_dict().items() if k not in SESSION_ONLY_SETTINGS}
    key = json.dumps(programs, sort_keys=True, default=str)
    if key in _kept:
        _kept.move_to_end(key)
        return _kept[key]
    trainer = new_trainer(config)
    if not trainer.host_side:
        _kept[key] = trainer
        while len(_kept) > KEPT_TRAINERS:
            _kept.popitem(last=False)
    return trainer


def new_trainer(config) -> Trainer:
    """A trainer of its own for `config`: its programs are traced and compiled afresh on first use."""
    env = make_env(config)
    return Trainer(config, env, make_algorithm(config, EnvSpec.of(env)), lambda seed: make_env(config, seed))
