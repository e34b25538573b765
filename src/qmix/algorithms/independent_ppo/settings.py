"""The settings of independent PPO (IPPO): a shared stochastic actor and a shared critic per agent."""

from __future__ import annotations

from dataclasses import dataclass

from qmix.settings import check, check_choices, setting


@dataclass(frozen=True)
class IndependentPPOSettings:
    # --- networks (parameters shared across agents; each agent acts and is valued on its own history) ---
    agent: str = setting("rnn", "actor and critic network: rnn (Dense-ReLU-GRU-Dense) or ff (Dense-ReLU-Dense)")
    agent_hidden_dim: int = setting(64, "width of the actor network")
    critic_hidden_dim: int = setting(64, "width of the critic network")
    obs_last_action: bool = setting(True, "actor and critic also see the agent's previous action, one-hot")
    obs_agent_id: bool = setting(True, "actor and critic also see the agent's index, one-hot")

    # --- learner ---
    gamma: float = setting(0.99, "discount factor")
    gae_lambda: float = setting(0.95, "GAE's lambda: 0 one-step advantages, 1 Monte Carlo returns minus V")
    lr: float = setting(5e-4, "Adam's step size (actor and critic)")
    adam_eps: float = setting(1e-5, "Adam's epsilon")
    grad_norm_clip: float | None = setting(10.0, "clip the gradient's global norm to this (null: no clipping)")
    epochs: int = setting(4, "passes over each iteration's episodes")
    minibatches: int = setting(1, "minibatches of whole episodes per pass (must divide num_envs; 1 divides "
                               "any, so every preset works)")
    clip_ratio: float = setting(0.2, "PPO's clipping of the probability ratio")
    value_coef: float = setting(0.5, "weight of the critic's squared error in the loss")
    entropy_coef: float = setting(0.01, "weight of the policy's entropy bonus (over available actions)")
    normalise_advantages: bool = setting(True, "scale each minibatch's advantages to mean 0, std 1")

    def validate(self, config) -> None:
        check_choices(self)
        from qmix.nets.agent_registry import AGENTS

        AGENTS.entry(self.agent)
        for key in ("agent_hidden_dim", "critic_hidden_dim", "epochs", "minibatches"):
            check(getattr(self, key) >= 1, f"{key} must be at least 1, got {getattr(self, key)}")
        check(config.num_envs % self.minibatches == 0,
              f"minibatches ({self.minibatches}) must divide num_envs ({config.num_envs}): each pass splits the "
              "iteration's episodes evenly; change one of them")
        for key in ("lr", "adam_eps"):
            value = getattr(self, key)
            check(0 < value < float("inf"), f"{key} must be a positive, finite number, got {value}")
        check(self.grad_norm_clip is None or 0 < self.grad_norm_clip < float("inf"),
              f"grad_norm_clip must be positive and finite (or null: no clipping), got {self.grad_norm_clip}")
        for key in ("gamma", "gae_lambda", "clip_ratio"):
            check(0 <= getattr(self, key) <= 1, f"{key} must be in [0, 1], got {getattr(self, key)}")
        for key in ("value_coef", "entropy_coef"):
            check(0 <= getattr(self, key) < float("inf"), f"{key} must be a non-negative number, got {getattr(self, key)}")
