"""The settings of the value-decomposition family (QMIX, VDN, IQL and the ablations), each with its doc."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import ClassVar

from qmix.settings import check, check_choices, setting

OPTIMIZERS = ("rmsprop", "adam")
LR_SCHEDULES = ("constant", "linear")
TARGET_UPDATES = ("hard", "soft")


@dataclass(frozen=True)
class ValueDecompositionSettings:
    # A setting given by hand that would be ignored without this choice is refused (the choice is named).
    ENABLED_BY: ClassVar[dict] = {
        "lr_anneal_updates": ("lr_schedule", "linear"),
        "lr_finish": ("lr_schedule", "linear"),
        "target_update_tau": ("target_update", "soft"),
        "target_update_interval_episodes": ("target_update", "hard"),
        "policy_average_tau": ("average_policy", True),
        "rmsprop_alpha": ("optimizer", "rmsprop"),
        "rmsprop_eps": ("optimizer", "rmsprop"),
        "adam_eps": ("optimizer", "adam"),
    }

    # --- agent network (parameters shared across agents) ---
    agent: str = setting("rnn", "agent network: rnn (DRQN, Dense-ReLU-GRU-Dense) or ff (Dense-ReLU-Dense)")
    agent_hidden_dim: int = setting(64, "width of the agent network")
    obs_last_action: bool = setting(True, "the agent also sees its previous action, one-hot")
    obs_agent_id: bool = setting(True, "the agent also sees its index, one-hot")
    state_last_action: bool = setting(False, "the mixer's state also holds every agent's previous action, one-hot")

    # --- mixer ---
    mixing_embed_dim: int = setting(32, "width of the mixing network (and of V(s))")
    hypernet_layers: int = setting(2, "hypernetwork depth: 1 linear (the paper), 2 Dense-ReLU-Dense")
    hypernet_embed_dim: int = setting(64, "width of two-layer hypernetworks")

    # --- learner ---
    gamma: float = setting(0.99, "discount factor")
    reward_scale: float = setting(1.0, "the learner's targets use reward x reward_scale (its Q-values are in "
                                  "those units); every logged return stays the environment's")
    optimizer: str = setting("rmsprop", "rmsprop (PyTorch's, as PyMARL) or adam", OPTIMIZERS)
    lr: float = setting(5e-4, "step size (the first, with lr_schedule=linear)")
    lr_schedule: str = setting("constant", "constant, or linear: from lr to lr_finish over lr_anneal_updates",
                               LR_SCHEDULES)
    lr_anneal_updates: int = setting(100_000, "learner updates over which a linear schedule falls to lr_finish")
    lr_finish: float = setting(5e-5, "the last step size of a linear schedule")
    rmsprop_alpha: float = setting(0.99, "RMSprop's decay of the squared-gradient average")
    rmsprop_eps: float = setting(1e-5, "RMSprop's epsilon (added outside the square root, as PyTorch)")
    adam_eps: float = setting(1e-8, "Adam's epsilon")
    grad_norm_clip: float | None = setting(10.0, "clip the gradient's global norm to this (null: no clipping)")
    double_q: bool = setting(True, "the online network picks the next action, the target network values it")
    td_lambda: float = setting(0.0, "0: one-step targets; in (0, 1]: TD(lambda) returns over the episode")
    target_update: str = setting("hard", "hard: copy every target_update_interval_episodes; soft: Polyak "
                                 "averaging after every update", TARGET_UPDATES)
    target_update_interval_episodes: int = setting(200, "hard target copies every this many collected episodes")
    target_update_tau: float = setting(0.005, "soft target updates: the weight on the online parameters")
    average_policy: bool = setting(False, "also keep a moving average of the agent network; tests play it too")
    policy_average_tau: float = setting(0.005, "the averaged network's weight on the newest parameters")
    time_buckets: int = setting(8, "compiled batch sizes: a batch's episodes are packed one after another "
                                "into the fewest of this many row counts that hold them (1: a row each)",
                                speed_only=True)

    # --- exploration ---
    epsilon_start: float = setting(1.0, "epsilon-greedy: the first exploration rate")
    epsilon_finish: float = setting(0.05, "epsilon-greedy: the rate after the anneal")
    epsilon_anneal_env_steps: int = setting(50_000, "env steps of the linear anneal (0: epsilon_finish at once)")

    def validate(self, config) -> None:
        check_choices(self)
        from qmix.nets.agent_registry import AGENTS

        AGENTS.entry(self.agent)  # a one-line error naming the agent networks
        check(self.hypernet_layers in (1, 2), f"hypernet_layers must be 1 or 2, got {self.hypernet_layers}")
        for key in ("agent_hidden_dim", "mixing_embed_dim", "hypernet_embed_dim", "time_buckets",
                    "target_update_interval_episodes", "lr_anneal_updates"):
            check(getattr(self, key) >= 1, f"{key} must be at least 1, got {getattr(self, key)}")
        check(self.epsilon_anneal_env_steps >= 0,
              f"epsilon_anneal_env_steps must not be negative, got {self.epsilon_anneal_env_steps}")
        for key in ("lr", "lr_finish", "rmsprop_eps", "adam_eps", "reward_scale"):
            value = getattr(self, key)
            check(0 < value < float("inf"), f"{key} must be a positive, finite number, got {value}")
        check(self.lr_schedule != "linear" or self.lr_finish <= self.lr,
              f"lr_finish ({self.lr_finish}) is above lr ({self.lr}): a linear schedule falls from lr to "
              "lr_finish; lower lr_finish")
        check(0 < self.rmsprop_alpha < 1, f"rmsprop_alpha must be in (0, 1), got {self.rmsprop_alpha}")
        check(self.grad_norm_clip is None or 0 < self.grad_norm_clip < float("inf"),
              f"grad_norm_clip must be positive and finite (or null: no clipping), got {self.grad_norm_clip}")
        for key in ("gamma", "td_lambda", "target_update_tau", "policy_average_tau", "epsilon_start",
                    "epsilon_finish"):
            check(0 <= getattr(self, key) <= 1, f"{key} must be in [0, 1], got {getattr(self, key)}")
        if config.backend == "sc2":
            check(not self.state_last_action, "backend=sc2's state already holds every agent's last action "
                  "(SMAC's default); drop state_last_action")
        check(not (self.state_last_action and config.map == "two_step"),
              "state_last_action is for the StarCraft maps (the two-step game's tables mix the bare state); "
              "drop state_last_action")


@functools.cache
def settings_with_mixer(mixer_settings: type | None) -> type:
    """The family's settings, plus those a mixer or a family member (Weighted QMIX) declares of its own (one
    flat class; both validate)."""
    if mixer_settings is None:
        return ValueDecompositionSettings

    @dataclass(frozen=True)
    class WithMixerSettings(mixer_settings, ValueDecompositionSettings):
        def validate(self, config) -> None:
            ValueDecompositionSettings.validate(self, config)
            mixer_settings.validate(self, config)

    WithMixerSettings.__name__ = WithMixerSettings.__qualname__ = f"ValueDecomposition{mixer_settings.__name__}"
    return WithMixerSettings
