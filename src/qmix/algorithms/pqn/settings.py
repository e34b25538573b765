"""The settings of PQN-style value decomposition (PQN-VDN, PQN-QMIX): normalised networks, no replay, no
target network, Q(lambda) over fresh step-based rollouts. The defaults are CPU-sized (PyMARL-wide
networks); the `pqn` preset holds the paper's own (Gallici et al., 2025, SMAX)."""

from __future__ import annotations

from dataclasses import dataclass

from qmix.settings import check, check_choices, setting

OPTIMIZERS = ("radam", "adam")


@dataclass(frozen=True)
class PQNSettings:
    # --- agent network (parameters shared across agents) ---
    agent: str = setting("rnn_norm", "agent network (`qmix config` lists them): rnn_norm is PQN's, with LayerNorm")
    agent_hidden_dim: int = setting(64, "width of the agent network (the paper: 512)")
    obs_last_action: bool = setting(False, "the agent also sees its previous action, one-hot (the paper: no)")
    obs_agent_id: bool = setting(True, "the agent also sees its index, one-hot")

    # --- mixer (pqn_qmix) ---
    mixing_embed_dim: int = setting(32, "width of the mixing network (and of V(s))")
    hypernet_layers: int = setting(2, "hypernetwork depth: 1 linear, 2 Dense-ReLU-Dense")
    hypernet_embed_dim: int = setting(64, "width of two-layer hypernetworks")
    mixer_layer_norm: bool = setting(True, "LayerNorm in the hidden layers of the mixer's hypernetworks and V(s)")

    # --- collection and learner ---
    rollout_steps: int = setting(128, "steps each environment takes per iteration (one rollout, then learning)")
    epochs: int = setting(4, "passes over each rollout")
    minibatches: int = setting(1, "minibatches of whole environment rows per pass (must divide num_envs; 1 "
                               "divides any, so every preset works)")
    gamma: float = setting(0.99, "discount factor")
    reward_scale: float = setting(1.0, "the learner's targets use reward x reward_scale (its Q-values are in "
                                  "those units); every logged return stays the environment's")
    q_lambda: float = setting(0.85, "Q(lambda)'s lambda over the rollout: 0 one-step targets, 1 Monte Carlo")
    optimizer: str = setting("radam", "radam (the paper's) or adam", OPTIMIZERS)
    lr: float = setting(2.5e-4, "the first step size")
    lr_anneal_env_steps: int = setting(10_000_000, "env steps over which the step size falls linearly to 0 "
                                       "(0: constant); the paper: the whole budget")
    grad_norm_clip: float | None = setting(1.0, "clip the gradient's global norm to this (null: no clipping)")

    # --- exploration ---
    epsilon_start: float = setting(1.0, "epsilon-greedy: the first exploration rate")
    epsilon_finish: float = setting(0.01, "epsilon-greedy: the rate after the anneal")
    epsilon_anneal_env_steps: int = setting(1_000_000, "env steps of the linear anneal (0: epsilon_finish at "
                                            "once); the paper: a tenth of the budget")

    def validate(self, config) -> None:
        check_choices(self)
        from qmix.nets.agent_registry import AGENTS

        AGENTS.entry(self.agent)
        check(config.backend != "sc2", "PQN steps its environments inside the compiled loop; backend=sc2 plays "
              "whole episodes from Python: use backend=smax")
        check(self.hypernet_layers in (1, 2), f"hypernet_layers must be 1 or 2, got {self.hypernet_layers}")
        for key in ("agent_hidden_dim", "mixing_embed_dim", "hypernet_embed_dim", "rollout_steps", "epochs",
                    "minibatches"):
            check(getattr(self, key) >= 1, f"{key} must be at least 1, got {getattr(self, key)}")
        check(config.num_envs % self.minibatches == 0,
              f"minibatches ({self.minibatches}) must divide num_envs ({config.num_envs}): each pass splits the "
              "environments' rows evenly; change one of them")
        for key in ("lr_anneal_env_steps", "epsilon_anneal_env_steps"):
            check(getattr(self, key) >= 0, f"{key} must not be negative, got {getattr(self, key)}")
        for key in ("lr", "reward_scale"):
            value = getattr(self, key)
            check(0 < value < float("inf"), f"{key} must be a positive, finite number, got {value}")
        check(self.grad_norm_clip is None or 0 < self.grad_norm_clip < float("inf"),
              f"grad_norm_clip must be positive and finite (or null: no clipping), got {self.grad_norm_clip}")
        for key in ("gamma", "q_lambda", "epsilon_start", "epsilon_finish"):
            check(0 <= getattr(self, key) <= 1, f"{key} must be in [0, 1], got {getattr(self, key)}")
