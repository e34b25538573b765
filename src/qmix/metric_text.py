"""How a per-episode metric is named and written for people: "win rate 73%", "return 12.31"."""

from __future__ import annotations

RATE_METRICS = ("win_rate",)  # fractions of episodes: written as percentages


def label(name: str) -> str:
    """A metric's name in words: win_rate -> "win rate"; test_ and train_ prefixes are left out."""
    return name.removeprefix("test_").removeprefix("train_").replace("_", " ")


def is_rate(name: str) -> bool:
    return name.removeprefix("test_").removeprefix("train_") in RATE_METRICS


def format_value(name: str, value: float, rate_digits: int = 0) -> str:
    """A value of metric `name`: a rate as a percentage (with `rate_digits` decimals), anything else to 2 decimals."""
    return f"{value:.{rate_digits}%}" if is_rate(name) else f"{value:.2f}"
