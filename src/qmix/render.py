"""Watch a trained policy: one greedy, decentralised episode of a finished run, drawn as an animated GIF.

SMAX advances its units in several world steps per environment step; the drawing replays every world
step (with the keys the episode was played with, so what is drawn is exactly what happened): an episode
of L steps becomes L x world-steps frames. Allies blue, enemies red, health bars above, a line for each
shot in range.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import jax
import numpy as np

from qmix.build import make_trainer
from qmix.envs import require_capability
from qmix.envs.smax import NO_UNIT, attacked_units
from qmix.errors import ConfigError
from qmix.learn.loop import Trainer
from qmix.learn.rollout import policy_step
from qmix.policies import MAIN, load_final
from qmix.run import load_run_config
from qmix.run_folder import seed_folders


@dataclass
class RenderedEpisode:
    path: Path
    frames: int
    steps: int
    won: bool
    episode_return: float


def _play_greedy_episode(trainer: Trainer, policy, key: jax.Array):
    """-> [(step key, env state before the step, {agent: action})], won, return. Host loop, one env."""
    env, algorithm = trainer.env, trainer.algorithm
    # one environment: the policy acts on a batch of one
    act = jax.jit(lambda key, actor_state, obs, avail: policy_step(algorithm, policy, key, actor_state, obs[None],
                                                                   avail[None]))
    step = jax.jit(env.step)
    reset_key, key = jax.random.split(key)
    env_state, timestep = jax.jit(env.reset)(reset_key)
    actor_state = algorithm.initial_actor_state(1)
    records, episode_return = [], 0.0
    for _ in range(env.episode_limit):
        key, step_key, actor_state, actions = act(key, actor_state, timestep.obs, timestep.avail_actions)
        actions = actions[0]
        records.append((step_key, env_state, {agent: actions[i] for i, agent in enumerate(env.smax.agents)}))
        env_state, timestep = step(step_key, env_state, actions)
        episode_return += float(timestep.reward)
        if bool(timestep.terminated | timestep.truncated):
            break
    return records, bool(timestep.won), episode_return


def _world_step_frames(smax, records) -> list[dict[str, np.ndarray]]:
    """Each environment step as its world steps: unit positions, health, alive, types and targets, numpy."""
    replay = jax.jit(partial(smax.step_env, get_state_sequence=True))
    fields = ("unit_positions", "unit_health", "unit_alive", "unit_types")
    frames = []
    for step, (step_key, env_state, actions) in enumerate(records):
        states = replay(step_key, env_state, actions)  # every field [world steps, U, ...]
        targets = np.asarray(attacked_units(states.prev_attack_actions, smax.num_allies))  # [world steps, U]
        states = jax.device_get(states)
        for world_step in range(targets.shape[0]):
            frame = {name: np.asarray(getattr(states, name)[world_step]) for name in fields}
            frames.append({**frame, "targets": targets[world_step], "step": step, "world_step": world_step})
    return frames


def render_run(run_dir: Path, out: Path | None = None, seed: int = 0, run: int = 0) -> RenderedEpisode:
    """Draw one greedy episode of run `run` (0: the first seed) of a finished run folder to a GIF."""
    run_dir = Path(run_dir)
    config = load_run_config(run_dir)
    require_capability(config.map, "render", f"`qmix render` cannot draw '{run_dir}'", config.backend)
    folders = seed_folders(run_dir, config)
    if not 0 <= run < len(folders):
        raise ConfigError(f"--run must be between 0 and {len(folders) - 1} for '{run_dir}' ({len(folders)} runs)")
    out = Path(out) if out is not None else folders[run] / f"episode_seed{seed}.gif"
    if out.suffix.lower() != ".gif":
        raise ConfigError(f"--out must name a .gif file, got '{out}'")
    if not out.parent.is_dir():
        raise ConfigError(f"the folder of --out '{out}' does not exist")
    trainer = make_trainer(config)
    policy = trainer.algorithm.policy_from_saved(MAIN, load_final(folders[run], trainer, config, run_dir))
    records, won, episode_return = _play_greedy_episode(trainer, policy, jax.random.PRNGKey(seed))
    frames = _world_step_frames(trainer.env.smax, records)
    outcome = "won" if won else "not won"
    _save_gif(trainer.env, frames, out, f"{config.alg} on {config.map}, {folders[run].name}: {outcome}")
    return RenderedEpisode(out, len(frames), len(records), won, episode_return)


def _save_gif(env, frames: list[dict[str, np.ndarray]], out: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only, no window
    import matplotlib.pyplot as plt
    from matplotlib.animation import FuncAnimation, PillowWriter

    smax, n_allies = env.smax, env.n_agents
    radii = np.asarray(smax.unit_type_radiuses)
    max_health = np.asarray(smax.unit_type_health)
    ranges = np.asarray(smax.unit_type_attack_ranges)
    figure, axes = plt.subplots(figsize=(5, 5))
    # One fixed view around everything that happens (the map is mostly empty), square, clipped to the map
    every_position = np.concatenate([f["unit_positions"] for f in frames])
    centre = (every_position.min(axis=0) + every_position.max(axis=0)) / 2
    half_side = max(np.ptp(every_position, axis=0).max() / 2 + 2.0, 4.0)

    def draw(index: int):
        frame = frames[index]
        axes.clear()
        axes.set(xlim=(centre[0] - half_side, centre[0] + half_side), ylim=(centre[1] - half_side, centre[1] + half_side),
                 aspect="equal", xticks=[], yticks=[])
        axes.set_title(f"{title}\nstep {frame['step'] + 1}, world step {frame['world_step'] + 1}", fontsize=9)
        position, alive, types = frame["unit_positions"], frame["unit_alive"], frame["unit_types"]
        for unit in np.flatnonzero(alive):
            target = frame["targets"][unit]
            in_range = target != NO_UNIT and alive[target] and (
                np.linalg.norm(position[unit] - position[target]) < ranges[types[unit]])
            if in_range:
                colour = "tab:blue" if unit < n_allies else "tab:red"
                axes.plot(*zip(position[unit], position[target], strict=True), color=colour, lw=0.8, alpha=0.6)
        for unit in np.flatnonzero(alive):
            colour = "tab:blue" if unit < n_allies else "tab:red"
            radius = radii[types[unit]]
            axes.add_patch(plt.Circle(position[unit], radius, color=colour))
            health = frame["unit_health"][unit] / max_health[types[unit]]
            x, y = position[unit] - (radius, -radius - 0.3)
            axes.add_patch(plt.Rectangle((x, y), 2 * radius, 0.25, color="lightgrey"))
            axes.add_patch(plt.Rectangle((x, y), 2 * radius * health, 0.25, color="tab:green"))

    animation = FuncAnimation(figure, draw, frames=len(frames), interval=80)
    partial_path = out.with_name(f".{out.name}.partial.gif")  # written whole, then renamed: never half a file
    try:
        animation.save(partial_path, writer=PillowWriter(fps=12))
        os.replace(partial_path, out)
    finally:
        plt.close(figure)
        partial_path.unlink(missing_ok=True)
