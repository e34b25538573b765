"""qmix: QMIX and its baselines for cooperative multi-agent reinforcement learning, in JAX."""

__version__ = "0.1.0"
