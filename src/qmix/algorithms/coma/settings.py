"""The settings of COMA: decentralised stochastic actors (one shared network) and a centralised
counterfactual critic, with the authors' defaults (PyMARL's coma_smac configuration)."""

from __future__ import annotations

from dataclasses import dataclass

from qmix.settings import check, check_choices, setting

CRITIC_UPDATES = ("batched", "sequential")


@dataclass(frozen=True)
class COMASettings:
    # --- actor (parameters shared across agents; each agent acts on its own history) ---
    agent: str = setting("rnn", "actor network: rnn (Dense-ReLU-GRU-Dense) or ff (Dense-ReLU-Dense)")
    agent_hidden_dim: int = setting(64, "width of the actor network")
    obs_last_action: bool = setting(True, "the actor also sees the agent's previous action, one-hot")
    obs_agent_id: bool = setting(True, "the actor also sees the agent's index, one-hot")

    # --- critic (centralised: the state, every agent's actions; feed-forward) ---
    critic_hidden_dim: int = setting(128, "width of the critic's two hidden layers")
    critic_update: str = setting("batched", "batched: one critic step on the iteration's episodes; sequential: one "
                                 "step per time step, the last first (the authors' code)", CRITIC_UPDATES)
    target_update_interval_episodes: int = setting(200, "copy the critic to its target every this many "
                                                   "collected episodes")

    # --- learner ---
    gamma: float = setting(0.99, "discount factor")
    td_lambda: float = setting(0.8, "lambda of the critic's TD(lambda) targets (0: one-step)")
    lr: float = setting(5e-4, "the actor's RMSprop step size")
    critic_lr: float = setting(5e-4, "the critic's RMSprop step size")
    rmsprop_alpha: float = setting(0.99, "RMSprop's decay of the squared-gradient average (actor and critic)")
    rmsprop_eps: float = setting(1e-5, "RMSprop's epsilon (added outside the square root, as PyTorch)")
    grad_norm_clip: float | None = setting(10.0, "clip each network's gradient global norm to this (null: no "
                                           "clipping)")
    entropy_coef: float = setting(0.0, "weight of the policy's entropy bonus (the authors: none)")

    # --- exploration: an epsilon floor on the policy ---
    epsilon_start: float = setting(0.5, "the policy's first epsilon floor: (1 - eps) pi + eps uniform over "
                                   "available actions")
    epsilon_finish: float = setting(0.01, "the epsilon floor after the anneal")
    epsilon_anneal_env_steps: int = setting(100_000, "env steps of the linear anneal (0: epsilon_finish at once)")

    def validate(self, config) -> None:
        check_choices(self)
        from qmix.nets.agent_registry import AGENTS

        AGENTS.entry(self.agent)  # a one-line error naming the agent networks
        for key in ("agent_hidden_dim", "critic_hidden_dim", "target_update_interval_episodes"):
            check(getattr(self, key) >= 1, f"{key} must be at least 1, got {getattr(self, key)}")
        check(self.epsilon_anneal_env_steps >= 0,
              f"epsilon_anneal_env_steps must not be negative, got {self.epsilon_anneal_env_steps}")
        for key in ("lr", "critic_lr", "rmsprop_eps"):
            value = getattr(self, key)
            check(0 < value < float("inf"), f"{key} must be a positive, finite number, got {value}")
        check(0 < self.rmsprop_alpha < 1, f"rmsprop_alpha must be in (0, 1), got {self.rmsprop_alpha}")
        check(self.grad_norm_clip is None or 0 < self.grad_norm_clip < float("inf"),
              f"grad_norm_clip must be positive and finite (or null: no clipping), got {self.grad_norm_clip}")
        check(0 <= self.entropy_coef < float("inf"),
              f"entropy_coef must be a non-negative number, got {self.entropy_coef}")
        for key in ("gamma", "td_lambda", "epsilon_start", "epsilon_finish"):
            check(0 <= getattr(self, key) <= 1, f"{key} must be in [0, 1], got {getattr(self, key)}")
