"""qmix: QMIX, its family and baselines for cooperative multi-agent reinforcement learning, in JAX."""

__version__ = "0.1.0"

__all__ = ["load_policy"]


def __getattr__(name: str):
    # imported on first use: `import qmix` (and the CLI's start) stays free of JAX
    if name == "load_policy":
        from qmix.policies import load_policy

        return load_policy
    raise AttributeError(f"module 'qmix' has no attribute '{name}'")
