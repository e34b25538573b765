"""The compiled training loop: collect -> store -> update -> bookkeeping, seeds side by side.

An iteration collects in one of two ways, as the algorithm asks (its `rollout_steps`):
- whole episodes (`episode_iteration`): every environment plays one episode with the algorithm's exploring
  policy; an off-policy algorithm's episodes go into the replay and it makes `updates_per_episode` updates
  per collected episode (fractions carry over) on sampled batches, an on-policy one makes one update on the
  episodes just collected;
- steps (`step_iteration`): every environment steps `rollout_steps` times, resetting itself when its episode
  ends and carrying on into the next iteration (learn/step_collection.py); the on-policy algorithm makes one
  update on that rollout.
Then the algorithm does its per-iteration bookkeeping. `train_chunk`
repeats iterations inside one `lax.while_loop` until a test point or the budget, or a bounded number of
iterations (so a stop request is seen within seconds); the host only touches logging, tests and checkpoints
between those calls. Every function is written for one run and vmapped
over a leading seed axis S. The loop knows nothing of mixers, exploration or target networks: whatever
metrics an update returns are summed here by name and logged as their means.

Host-side environments (real StarCraft II) are collected in Python (host_loop.py) and fed to the same
compiled `absorb`.
"""

from __future__ import annotations

import math
from functools import cached_property
from typing import Any

import flashbax as fbx
import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from qmix.envs.base import episode_metrics
from qmix.episodes import (
    SEED_AXIS,
    EnvSpec,
    Episodes,
    EpisodeStats,
    evaluation_metrics,
)
from qmix.learn.rollout import run_episodes
from qmix.learn.step_collection import run_steps, start_collector
from qmix.learn.write_back import keep_if_inactive, still_to_train, store

Totals = dict[str, jax.Array]  # sums over a chunk: "episodes", "updates", "train_<name>", "update_<name>"
UNBOUNDED = 2**31 - 1  # max_iterations for a chunk that runs to its stop


@struct.dataclass
class RunnerState:
    """Everything one run needs to continue, as arrays (so it can be vmapped and checkpointed)."""

    alg: Any  # the algorithm's own state
    replay: Any  # flashbax buffer state holding whole episodes
    key: jax.Array
    env_steps: jax.Array  # [] int32, environment steps collected
    episodes: jax.Array  # [] int32, training episodes collected
    updates: jax.Array  # [] int32, learner updates made
    update_credit: jax.Array  # [] float32, updates owed but not yet made (fractions carry over)
    collector: Any = None  # step-based collection: where the environments stand between iterations


class Trainer:
    """Runs an algorithm on an environment as a config says: the replay and the compiled loop's pieces.
    Handed both (qmix.build.make_trainer builds them from the registries), it knows neither registry."""

    def __init__(self, config, env, algorithm, make_host_env=None):
        """`make_host_env(seed)`: another game like `env`, for environments stepped from Python (one per
        environment and seed)."""
        self.config = config
        self.env = env
        self.make_host_env = make_host_env
        self.host_side = getattr(self.env, "host_side", False)  # real StarCraft II: collected in Python
        self.spec = EnvSpec.of(self.env)
        self.algorithm = algorithm
        self.rollout_steps = getattr(algorithm, "rollout_steps", None)  # None: whole episodes
        self.buffer = fbx.make_item_buffer(max_length=config.buffer_size_episodes, min_length=config.batch_size,
                                           sample_batch_size=config.batch_size, add_batches=True)

    # ----- one run -----
    def init(self, key: jax.Array) -> RunnerState:
        alg_key, key = jax.random.split(key)
        return self.new_runner(self.algorithm.init(alg_key), key)

    def new_runner(self, alg_state: Any, key: jax.Array) -> RunnerState:
        zero = jnp.zeros((), jnp.int32)
        replay = self.buffer.init(self.algorithm.example_item()) if self.algorithm.uses_replay else None
        collector = None
        if self.rollout_steps:
            collector_key, key = jax.random.split(key)
            collector = start_collector(self.algorithm, self.env, collector_key, self.config.num_envs)
        return RunnerState(alg=alg_state, replay=replay, key=key, env_steps=zero, episodes=zero, updates=zero,
                           update_credit=jnp.zeros((), jnp.float32), collector=collector)

    @cached_property
    def metric_names(self) -> list[str]:
        """What an update reports, read off its output shapes (nothing is computed)."""
        batch = self.config.batch_size if self.algorithm.uses_replay else self.config.num_envs
        example = jax.tree.map(lambda x: x[None].repeat(batch, 0), self.algorithm.example_item())
        state = jax.eval_shape(self.algorithm.init, jax.random.PRNGKey(0))
        return list(jax.eval_shape(self.algorithm.update, state, example, jax.random.PRNGKey(0))[1])

    def fresh_totals(self, num_seeds: int) -> Totals:
        """[S] zeros for every sum a chunk keeps."""
        names = ["episodes", *(f"train_{n}" for n in episode_metrics(self.env).names), "updates",
                 *(f"update_{n}" for n in self.metric_names)]
        return {name: jnp.zeros((num_seeds,), jnp.float32) for name in names}

    @property
    def max_updates_per_iteration(self) -> int:
        """The most updates one iteration can owe: the credit carried over is always below one."""
        return math.ceil(self.config.num_envs * self.config.updates_per_episode)

    def collect_inputs(self, runner: RunnerState) -> tuple[jax.Array, Any]:
        """One run: the key to collect with (split(runner.key)[1]; `absorb` keeps [0]) and the policy."""
        return jax.random.split(runner.key)[1], self.algorithm.acting_policy(runner.alg, runner.env_steps)

    def collect(self, runner: RunnerState) -> tuple[Episodes, EpisodeStats]:
        key, policy = self.collect_inputs(runner)
        return run_episodes(self.algorithm, self.env, policy, key, self.config.num_envs)

    def _learn(self, runner: RunnerState, n_updates: jax.Array, totals: Totals):
        """Make `n_updates` updates on uniformly sampled batches of whole episodes.

        The iteration owes at most `max_updates_per_iteration` updates, so that many batches are sampled
        up front and a fixed-length scan skips the ones not owed. `n_updates` is the same in every seed
        (each collects num_envs episodes per iteration), so the seeds agree on it and each skip stays a
        real branch under the seed vmap (a per-seed predicate would compute every update and select).
        """
        count = self.max_updates_per_iteration
        if count == 0:
            return runner, totals
        key, sample_key = jax.random.split(runner.key)
        sample = lambda k: self.buffer.sample(runner.replay, k).experience  # noqa: E731
        batches = jax.vmap(sample)(jax.random.split(sample_key, count))  # [M, B, ...]
        update_keys = jax.random.split(jax.random.fold_in(sample_key, 1), count)  # the sampling keys untouched
        n_updates = jax.lax.pmax(n_updates, SEED_AXIS)

        def update(alg_state, totals, batch, update_key):
            alg_state, metrics, steps = self.algorithm.update(alg_state, batch, update_key, axis_name=SEED_AXIS)
            return alg_state, _add_update(totals, metrics), steps.astype(jnp.int32)

        def maybe_update(carry, indexed):
            index, batch, update_key = indexed
            skip = lambda state, totals, *_: (state, totals, jnp.zeros((), jnp.int32))  # noqa: E731
            *carry, steps = jax.lax.cond(index < n_updates, update, skip, *carry, batch, update_key)
            return tuple(carry), steps

        (alg_state, totals), steps = jax.lax.scan(maybe_update, (runner.alg, totals),
                                                  (jnp.arange(count), batches, update_keys))
        return runner.replace(alg=alg_state, key=key, updates=runner.updates + steps.sum()), totals

    def episode_iteration(self, runner: RunnerState, totals: Totals, active: jax.Array
                          ) -> tuple[RunnerState, Totals]:
        """One run's iteration of whole episodes: collect, then `absorb` them."""
        episodes, stats = self.collect(runner)
        return self.absorb(runner, totals, active, episodes, stats)

    def step_iteration(self, runner: RunnerState, totals: Totals, active: jax.Array) -> tuple[RunnerState, Totals]:
        """One run's iteration of steps: every environment steps `rollout_steps` times, the algorithm makes
        one update on the rollout, then its bookkeeping. A run that is not `active` keeps its state."""
        key, policy = self.collect_inputs(runner)
        collector, rollout, finished = run_steps(self.algorithm, self.env, policy, key, runner.collector,
                                                 self.rollout_steps)
        key, update_key = jax.random.split(jax.random.split(runner.key)[0])
        alg_state, metrics, steps = self.algorithm.update(runner.alg, rollout, update_key, axis_name=SEED_AXIS)
        episodes = runner.episodes + finished["episodes"].astype(jnp.int32)
        new = runner.replace(alg=self.algorithm.after_iteration(alg_state, episodes), key=key, collector=collector,
                             env_steps=runner.env_steps + rollout.steps.filled.sum(dtype=jnp.int32),
                             episodes=episodes, updates=runner.updates + steps.astype(jnp.int32))
        new_totals = _add_update({name: total + finished.get(name, 0.0) for name, total in totals.items()}, metrics)
        return keep_if_inactive(active, new, runner), keep_if_inactive(active, new_totals, totals)

    def absorb(self, runner: RunnerState, totals: Totals, active: jax.Array, episodes: Episodes,
               stats: EpisodeStats) -> tuple[RunnerState, Totals]:
        """One run, after collecting `episodes` [E, ...]: store them, learn, bookkeeping.
        Shared by the compiled loop and the host-side one. A run that is not `active` keeps its state."""
        c = self.config
        start, start_totals = runner, totals
        key, _ = jax.random.split(runner.key)
        runner = runner.replace(key=key, env_steps=runner.env_steps + stats.lengths.sum(),
                                episodes=runner.episodes + c.num_envs)
        totals = {**totals, "episodes": totals["episodes"] + c.num_envs,
                  **{f"train_{n}": totals[f"train_{n}"] + v.sum() for n, v in stats.metrics().items()}}
        if self.algorithm.uses_replay:
            runner, totals = self._store_and_learn(runner, totals, active, episodes)
        else:  # on-policy: one update on the episodes just collected
            key, update_key = jax.random.split(runner.key)
            alg_state, metrics, steps = self.algorithm.update(runner.alg, episodes, update_key, axis_name=SEED_AXIS)
            runner = runner.replace(alg=alg_state, key=key, updates=runner.updates + steps.astype(jnp.int32))
            totals = _add_update(totals, metrics)
        runner = runner.replace(alg=self.algorithm.after_iteration(runner.alg, runner.episodes))
        # the replay is left out of the selection: selecting it would copy it (`store` already kept it)
        replay = runner.replay
        runner = keep_if_inactive(active, runner.replace(replay=None), start.replace(replay=None))
        return runner.replace(replay=replay), keep_if_inactive(active, totals, start_totals)

    def _store_and_learn(self, runner: RunnerState, totals: Totals, active: jax.Array, episodes: Episodes):
        c = self.config
        runner = runner.replace(replay=store(self.buffer, runner.replay, episodes, active, c.buffer_size_episodes))
        # Updates owed per collected episode; none until the replay holds a full batch (as PyMARL).
        can_learn = self.buffer.can_sample(runner.replay)
        credit = runner.update_credit + c.num_envs * c.updates_per_episode
        n_updates = jnp.where(can_learn, jnp.floor(credit), 0.0).astype(jnp.int32)
        runner = runner.replace(update_credit=jnp.where(can_learn, credit - n_updates, 0.0))
        return self._learn(runner, n_updates, totals)

    def train_chunk_unjitted(self, runners: RunnerState, totals: Totals, stop_env_steps: jax.Array,
                             stop_episodes: jax.Array, max_iterations: jax.Array
                             ) -> tuple[RunnerState, Totals, jax.Array]:
        """All runs [S]: iterate each until env_steps >= stop_env_steps or episodes >= stop_episodes, adding
        to `totals`, or until `max_iterations` iterations have run (then every run pauses at once, so calling
        again with what came back continues exactly as if there had been no pause). Returns the iterations
        run. The loop is outside the seed vmap: see write_back.py."""

        def active(runners):  # [S] bool
            return still_to_train(runners, stop_env_steps, stop_episodes)

        iteration = self.step_iteration if self.rollout_steps else self.episode_iteration

        def go_on(carry):
            runners, _, done = carry
            return active(runners).any() & (done < max_iterations)

        def body(carry):
            runners, totals, done = carry
            runners, totals = jax.vmap(iteration, axis_name=SEED_AXIS)(runners, totals, active(runners))
            return runners, totals, done + 1

        return jax.lax.while_loop(go_on, body, (runners, totals, jnp.zeros((), jnp.int32)))

    def train_runs_until(self, runners: RunnerState, stop_env_steps, stop_episodes) -> tuple[RunnerState, Totals]:
        """All runs [S], from fresh totals, until each reaches its stop (one call of `train_chunk`)."""
        totals = self.fresh_totals(len(np.asarray(stop_env_steps)))
        runners, totals, _ = self.train_chunk(runners, totals, stop_env_steps, stop_episodes, np.int32(UNBOUNDED))
        return runners, totals

    def evaluate(self, alg_state: Any, key: jax.Array) -> dict[str, dict[str, jax.Array]]:
        """`test_episodes` greedy, decentralised episodes per test policy (the same games for each)."""
        n = self.config.test_episodes
        return {name: evaluation_metrics(run_episodes(self.algorithm, self.env, policy, key, n)[1])
                for name, policy in self.algorithm.test_policies(alg_state).items()}

    # ----- many runs side by side: compiled once, vmapped over the seed axis S -----
    # Always vmapped, even for one seed: one code path, and the algorithms' collectives need the axis.
    @cached_property
    def init_runs(self):
        """keys [S, 2] -> S fresh runs, each equal to a run of its key alone.

        The networks are initialised one run at a time: vmapped, the GRU's orthogonal initialisers become
        one batched QR whose LAPACK kernel waits on XLA:CPU's intra-op pool from inside that pool, and on
        2 cores it could wait forever (the process then sat idle at the start of a run).
        """
        init_alg = jax.jit(self.algorithm.init)
        new_runners = jax.jit(jax.vmap(self.new_runner))

        def init_runs(keys: jax.Array) -> RunnerState:
            alg_keys, run_keys = jnp.unstack(jax.vmap(jax.random.split)(keys), axis=1)
            states = [init_alg(key) for key in alg_keys]
            runners = new_runners(jax.tree.map(lambda *runs: jnp.stack(runs), *states), run_keys)
            # Strongly typed: a weakly typed leaf (e.g. an environment state's Python-number field) comes
            # back from the loop strongly typed, and the loop would compile a second time for it.
            return jax.tree.map(lambda x: jnp.asarray(x, x.dtype), runners)

        return init_runs

    @cached_property
    def host(self):
        from qmix.learn.host_loop import HostLoop

        return HostLoop(self)

    @cached_property
    def train_chunk(self):
        if self.host_side:
            return self.host.train_chunk
        return jax.jit(self.train_chunk_unjitted, donate_argnums=(0, 1))

    @cached_property
    def evaluate_runs(self):
        """alg states [S], keys [S] -> {test policy name: {metric: [S]}}."""
        if self.host_side:
            return self.host.evaluate_runs
        return jax.jit(jax.vmap(self.evaluate, axis_name=SEED_AXIS))

    def close(self) -> None:
        """Stop host-side environments (real StarCraft II games), if any were started."""
        if self.host_side and "host" in self.__dict__:
            self.host.close()


def _add_update(totals: Totals, metrics: dict[str, jax.Array]) -> Totals:
    """Count one update call (its metrics are averaged over those; the run's `updates` counts gradient
    steps) and add its metrics to the chunk's sums, by name."""
    return {**totals, "updates": totals["updates"] + 1,
            **{f"update_{n}": totals[f"update_{n}"] + v for n, v in metrics.items()}}


def run_slice(tree: Any, k: int) -> Any:
    """Run k of a pytree whose leaves carry the seed axis S first."""
    return jax.tree.map(lambda x: x[k], tree)


def seed_keys(seed: int, num_seeds: int) -> jax.Array:
    """[S, 2] keys: run k gets the key of seed `seed + k`, so a vmapped run equals the same seed alone."""
    return jnp.stack([jax.random.PRNGKey(seed + k) for k in range(num_seeds)])
