"""The compiled training loop: collect -> store -> learn -> update targets, seeds side by side.

One iteration: every environment plays one whole episode (epsilon-greedy), the episodes go into the
replay, the learner makes `updates_per_episode` updates per collected episode (fractions carry over),
and the target network is refreshed. `train_until` repeats iterations inside one `lax.while_loop` until
a test point or the budget is reached; the host only touches logging, tests and checkpoints between
those chunks. Every function is written for one run and vmapped over a leading seed axis S.

Host-side environments (real StarCraft II) cannot run inside the compiled loop: for them the episodes
are collected in Python (host_rollout.py) and the rest of an iteration (`absorb`) is the same compiled code.
"""

from __future__ import annotations

import itertools
import math
from functools import cached_property
from typing import Any

import flashbax as fbx
import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from qmix.config import Config
from qmix.envs import make_env
from qmix.learn.host_rollout import HostRollout
from qmix.learn.learner import EnvSpec, Episodes, Learner, LearnerState
from qmix.learn.rollout import EpisodeStats, run_episodes

SEED_AXIS = "seeds"  # the vmapped axis of independent runs


@struct.dataclass
class RunnerState:
    """Everything one run needs to continue, as arrays (so it can be vmapped and checkpointed)."""

    learner: LearnerState
    replay: Any  # flashbax buffer state holding whole episodes
    key: jax.Array
    env_steps: jax.Array  # [] int32, environment steps collected
    episodes: jax.Array  # [] int32, training episodes collected
    update_credit: jax.Array  # [] float32, learner updates owed but not yet made (fractions carry over)
    last_target_update_episode: jax.Array  # [] int32


@struct.dataclass
class ChunkTotals:
    """Sums over one chunk of iterations, turned into means for the log."""

    episodes: jax.Array
    returns: jax.Array
    wins: jax.Array
    lengths: jax.Array
    updates: jax.Array
    loss: jax.Array
    q_taken: jax.Array
    grad_norm: jax.Array

    @classmethod
    def zeros(cls) -> ChunkTotals:
        return cls(*(jnp.zeros((), jnp.float32) for _ in range(8)))


class Trainer:
    """Builds the environment, learner and replay for a config and compiles the loop's pieces."""

    def __init__(self, config: Config):
        self.config = config
        self.env = make_env(config.map, reward=config.reward, episode_limit=config.episode_limit,
                            backend=config.backend)
        self.host_side = getattr(self.env, "host_side", False)  # real StarCraft II: collected in Python
        self.spec = EnvSpec.of(self.env)
        self.learner = Learner(config, self.spec)
        self.buffer = fbx.make_item_buffer(
            max_length=config.buffer_size_episodes,
            min_length=config.batch_size,
            sample_batch_size=config.batch_size,
            add_batches=True,
        )

    # ----- one run -----
    def init(self, key: jax.Array) -> RunnerState:
        learner_key, key = jax.random.split(key)
        return self._new_runner(self.learner.init(learner_key), key)

    def _new_runner(self, learner_state: LearnerState, key: jax.Array) -> RunnerState:
        return RunnerState(
            learner=learner_state,
            replay=self.buffer.init(self._example_episode()),
            key=key,
            env_steps=jnp.zeros((), jnp.int32),
            episodes=jnp.zeros((), jnp.int32),
            update_credit=jnp.zeros((), jnp.float32),
            last_target_update_episode=jnp.zeros((), jnp.int32),
        )

    def _example_episode(self) -> Episodes:
        T, N, A = self.spec.episode_limit, self.spec.n_agents, self.spec.n_actions
        return Episodes(
            obs=jnp.zeros((T + 1, N, self.spec.obs_dim), jnp.float32),
            state=jnp.zeros((T + 1, self.spec.state_dim), jnp.float32),
            avail=jnp.zeros((T + 1, N, A), bool),
            actions=jnp.zeros((T, N), jnp.int32),
            rewards=jnp.zeros((T,), jnp.float32),
            terminated=jnp.zeros((T,), bool),
            truncated=jnp.zeros((T,), bool),
            filled=jnp.zeros((T,), bool),
        )

    def epsilon(self, env_steps: jax.Array) -> jax.Array:
        """Linear anneal from epsilon_start to epsilon_finish over epsilon_anneal_env_steps."""
        c = self.config
        progress = jnp.minimum(env_steps / max(c.epsilon_anneal_env_steps, 1), 1.0)
        if c.epsilon_anneal_env_steps == 0:
            progress = jnp.ones_like(progress)
        return c.epsilon_start + (c.epsilon_finish - c.epsilon_start) * progress

    @property
    def max_updates_per_iteration(self) -> int:
        """The most updates one iteration can owe: the credit carried over is always below one."""
        return math.ceil(self.config.num_envs * self.config.updates_per_episode)

    def _learn(self, runner: RunnerState, n_updates: jax.Array, totals: ChunkTotals):
        """Make `n_updates` learner updates on uniformly sampled batches of whole episodes.

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
        n_updates = jax.lax.pmax(n_updates, SEED_AXIS)

        def update(learner_state, totals, batch):
            learner_state, metrics = self.learner.update(learner_state, batch, axis_name=SEED_AXIS)
            totals = totals.replace(
                updates=totals.updates + 1,
                loss=totals.loss + metrics["loss"],
                q_taken=totals.q_taken + metrics["q_taken_mean"],
                grad_norm=totals.grad_norm + metrics["grad_norm"],
            )
            return learner_state, totals

        def maybe_update(carry, indexed_batch):
            index, batch = indexed_batch
            skip = lambda state, totals, _: (state, totals)  # noqa: E731
            return jax.lax.cond(index < n_updates, update, skip, *carry, batch), None

        (learner_state, totals), _ = jax.lax.scan(
            maybe_update, (runner.learner, totals), (jnp.arange(count), batches)
        )
        return runner.replace(learner=learner_state, key=key), totals

    def _update_target(self, runner: RunnerState) -> RunnerState:
        c = self.config
        if c.target_update_tau > 0 or c.target_update_interval_episodes <= 0:
            return runner  # soft updates happen inside every learner update
        due = runner.episodes - runner.last_target_update_episode >= c.target_update_interval_episodes
        learner_state = jax.lax.cond(
            due, self.learner.hard_target_update, lambda s: s, runner.learner
        )
        last = jnp.where(due, runner.episodes, runner.last_target_update_episode)
        return runner.replace(learner=learner_state, last_target_update_episode=last)

    def _store(self, replay, episodes: Episodes, active: jax.Array):
        """Add the iteration's episodes to the replay; a run that is not active leaves it as it was.

        An inactive run writes back the episodes already in the slots it would have used and keeps its
        write position, so the cost is that of the new episodes, never of a copy of the whole replay.
        (Relies on flashbax's item buffer layout: experience [1, buffer_size, ...] and current_index.)
        """
        slots = (jnp.arange(self.config.num_envs) + replay.current_index) % self.config.buffer_size_episodes
        present = jax.tree.map(lambda x: x[0, slots], replay.experience)
        data = jax.tree.map(lambda new, old: jnp.where(active, new, old), episodes, present)
        added = self.buffer.add(replay, data)
        return added.replace(
            current_index=jnp.where(active, added.current_index, replay.current_index),
            is_full=jnp.where(active, added.is_full, replay.is_full),
        )

    def collect_inputs(self, runner: RunnerState) -> tuple[jax.Array, jax.Array]:
        """One run: the key to collect with (split(runner.key)[1]; `absorb` keeps [0]) and epsilon."""
        return jax.random.split(runner.key)[1], self.epsilon(runner.env_steps)

    def collect(self, runner: RunnerState) -> tuple[Episodes, EpisodeStats]:
        """One run: an epsilon-greedy episode in each of its environments."""
        key, epsilon = self.collect_inputs(runner)
        return run_episodes(self.learner, self.env, runner.learner.params.agent, key, self.config.num_envs, epsilon)

    def absorb(
        self, runner: RunnerState, totals: ChunkTotals, active: jax.Array, episodes: Episodes, stats: EpisodeStats
    ) -> tuple[RunnerState, ChunkTotals]:
        """One run, after collecting `episodes` [E, ...]: store them, learn, update the target.

        Shared by the compiled loop and the host-side one (real StarCraft II collects in Python).
        A run that is not `active` keeps its state.
        """
        c = self.config
        start, start_totals = runner, totals
        key, _ = jax.random.split(runner.key)
        runner = runner.replace(
            replay=self._store(runner.replay, episodes, active),
            key=key,
            env_steps=runner.env_steps + stats.lengths.sum(),
            episodes=runner.episodes + c.num_envs,
        )
        totals = totals.replace(
            episodes=totals.episodes + c.num_envs,
            returns=totals.returns + stats.returns.sum(),
            wins=totals.wins + stats.won.sum(),
            lengths=totals.lengths + stats.lengths.sum(),
        )
        # Updates owed per collected episode; none until the replay holds a full batch (as PyMARL).
        can_learn = self.buffer.can_sample(runner.replay)
        credit = runner.update_credit + c.num_envs * c.updates_per_episode
        n_updates = jnp.where(can_learn, jnp.floor(credit), 0.0).astype(jnp.int32)
        runner = runner.replace(update_credit=jnp.where(can_learn, credit - n_updates, 0.0))
        runner, totals = self._learn(runner, n_updates, totals)
        runner = self._update_target(runner)
        # the replay is left out of the selection: selecting it would copy it (_store already kept it)
        keep = lambda new, old: jax.tree.map(lambda n, o: jnp.where(active, n, o), new, old)  # noqa: E731
        replay = runner.replay
        runner = keep(runner.replace(replay=None), start.replace(replay=None)).replace(replay=replay)
        return runner, keep(totals, start_totals)

    def train_runs_until_unjitted(
        self, runners: RunnerState, stop_env_steps: jax.Array, stop_episodes: jax.Array
    ) -> tuple[RunnerState, ChunkTotals]:
        """All runs [S]: iterate each until env_steps >= stop_env_steps or episodes >= stop_episodes.

        The loop runs while any run is short of its stop and is written outside the seed vmap: a vmapped
        loop with a per-seed condition would select between the old and new state of every run in every
        iteration, replay included, which costs a copy of every replay per iteration. Here a run that has
        reached its stop just keeps its state (see `absorb` and `_store`).
        """

        def active(runners):  # [S] bool
            return (runners.env_steps < stop_env_steps) & (runners.episodes < stop_episodes)

        def body(carry):
            runners, totals = carry
            episodes, stats = jax.vmap(self.collect)(runners)
            return jax.vmap(self.absorb, axis_name=SEED_AXIS)(runners, totals, active(runners), episodes, stats)

        totals = jax.vmap(lambda _: ChunkTotals.zeros())(stop_env_steps)
        return jax.lax.while_loop(lambda carry: active(carry[0]).any(), body, (runners, totals))

    def evaluate(self, agent_params, key: jax.Array) -> dict[str, jax.Array]:
        """`test_episodes` greedy, decentralised episodes: win rate, mean return, mean length."""
        _, stats = run_episodes(self.learner, self.env, agent_params, key, self.config.test_episodes, 0.0)
        return evaluation_metrics(stats)

    # ----- many runs side by side: compiled once, vmapped over the seed axis S -----
    # Always vmapped, even for one seed: one code path, and the learner's collectives need the axis.
    @cached_property
    def init_runs(self):
        """keys [S, 2] -> S fresh runs, each equal to `init` of its key.

        The networks are initialised one run at a time: vmapped, the GRU's orthogonal initialisers become
        one batched QR whose LAPACK kernel waits on XLA:CPU's intra-op pool from inside that pool, and on
        2 cores it could wait forever (the process then sat idle at the start of a run).
        """
        init_learner = jax.jit(self.learner.init)
        new_runners = jax.jit(jax.vmap(self._new_runner))

        def init_runs(keys: jax.Array) -> RunnerState:
            learner_keys, run_keys = jnp.unstack(jax.vmap(jax.random.split)(keys), axis=1)
            learners = [init_learner(key) for key in learner_keys]
            return new_runners(jax.tree.map(lambda *runs: jnp.stack(runs), *learners), run_keys)

        return init_runs

    @cached_property
    def train_runs_until(self):
        if self.host_side:
            return self._train_runs_until_host
        return jax.jit(self.train_runs_until_unjitted, donate_argnums=(0,))

    @cached_property
    def evaluate_runs(self):
        if self.host_side:
            return self._evaluate_runs_host
        return jax.jit(jax.vmap(self.evaluate, axis_name=SEED_AXIS))

    # ----- the same loop with episodes collected in Python (host-side environments) -----
    @cached_property
    def host_rollout(self) -> HostRollout:
        c = self.config
        instances = itertools.count()
        make = lambda: make_env(c.map, backend=c.backend, seed=c.seed * 1000 + next(instances))  # noqa: E731
        return HostRollout(self.learner, make, c.num_seeds, c.num_envs)

    @cached_property
    def _host_step(self):
        """Key to collect with and epsilon, per run; then the compiled store / learn / target update."""
        collect = jax.jit(jax.vmap(self.collect_inputs))
        absorb = jax.jit(jax.vmap(self.absorb, axis_name=SEED_AXIS), donate_argnums=(0,))
        return collect, absorb

    def _train_runs_until_host(self, runners: RunnerState, stop_env_steps, stop_episodes):
        collect, absorb = self._host_step
        totals = jax.vmap(lambda _: ChunkTotals.zeros())(jnp.asarray(stop_env_steps))
        while True:
            active = (np.asarray(runners.env_steps) < stop_env_steps) & (np.asarray(runners.episodes) < stop_episodes)
            if not active.any():
                return runners, totals
            keys, epsilon = collect(runners)
            episodes, stats = self.host_rollout.run(runners.learner.params.agent, keys, epsilon, active)
            runners, totals = absorb(runners, totals, jnp.asarray(active), episodes, stats)

    def _evaluate_runs_host(self, agent_params, keys: jax.Array) -> dict[str, np.ndarray]:
        """`test_episodes` greedy episodes per run, in rounds of num_envs (the games already running)."""
        c, rollout = self.config, self.host_rollout
        rounds = math.ceil(c.test_episodes / c.num_envs)
        greedy, everyone = np.zeros(c.num_seeds, np.float32), np.ones(c.num_seeds, bool)
        results = []
        for r in range(rounds):
            round_keys = keys if r == 0 else jax.vmap(lambda k, r=r: jax.random.fold_in(k, r))(keys)
            results.append(rollout.run(agent_params, round_keys, greedy, everyone)[1])
        stats = jax.tree.map(lambda *parts: np.concatenate(parts, axis=1)[:, : c.test_episodes], *results)
        return evaluation_metrics(stats)

    def close(self) -> None:
        """Stop host-side environments (real StarCraft II games), if any were started."""
        if self.host_side and "host_rollout" in self.__dict__:
            self.host_rollout.close()


def evaluation_metrics(stats: EpisodeStats) -> dict:
    """Greedy test episodes [..., episodes] -> win rate, mean return and mean length [...]."""
    return {
        "test_win_rate": stats.won.mean(axis=-1),
        "test_return": stats.returns.mean(axis=-1),
        "test_length": stats.lengths.mean(axis=-1),
    }


def run_slice(tree: Any, k: int) -> Any:
    """Run k of a pytree whose leaves carry the seed axis S first."""
    return jax.tree.map(lambda x: x[k], tree)


def seed_keys(seed: int, num_seeds: int) -> jax.Array:
    """[S, 2] keys: run k gets the key of seed `seed + k`, so a vmapped run equals the same seed alone."""
    return jnp.stack([jax.random.PRNGKey(seed + k) for k in range(num_seeds)])
