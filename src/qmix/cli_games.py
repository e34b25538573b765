"""The matrix-game commands: `qmix two-step` (the QMIX paper's game) and `qmix matrix-game` (Weighted QMIX's)."""

from __future__ import annotations

from typing import Annotated

import typer

from qmix.errors import ConfigError


def two_step(
    alg: Annotated[list[str] | None, typer.Option("--alg", help="algorithm(s); default: qmix and vdn")] = None,
    seed: Annotated[int, typer.Option(help="first seed")] = 0,
    seeds: Annotated[int, typer.Option("--seeds", help="number of seeds, trained side by side")] = 5,
    episodes: Annotated[int, typer.Option(help="training episodes (the paper: 5000)")] = 5000,
) -> None:
    """The paper's two-step game: learned Q_tot tables beside the paper's, and the greedy return."""
    algs = checked_game_algorithms(alg or ["qmix", "vdn"], seeds, episodes)
    from qmix.two_step import main as two_step_main

    two_step_main(algs, seed, seeds, episodes)


def matrix_game(
    alg: Annotated[list[str] | None, typer.Option("--alg", help="algorithm(s); default: qmix, vdn, cw_qmix, ow_qmix")] = None,
    seed: Annotated[int, typer.Option(help="first seed")] = 0,
    seeds: Annotated[int, typer.Option("--seeds", help="number of seeds, trained side by side")] = 5,
    episodes: Annotated[int, typer.Option(help="training episodes (one step each)")] = 5000,
) -> None:
    """Weighted QMIX's one-step matrix game that monotonic mixing cannot solve: joint values, greedy actions."""
    algs = checked_game_algorithms(alg or ["qmix", "vdn", "cw_qmix", "ow_qmix"], seeds, episodes)
    from qmix.matrix_game import main as matrix_game_main

    matrix_game_main(algs, seed, seeds, episodes)


def checked_game_algorithms(algs: list[str], seeds: int, episodes: int) -> list[str]:
    from qmix.algorithms import ALGORITHMS

    for name in algs:
        ALGORITHMS.entry(name)  # a one-line error for an unknown name
    if seeds < 1 or episodes < 1:
        raise ConfigError("--seeds and --episodes must be at least 1")
    return algs
