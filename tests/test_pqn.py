"""PQN-style value decomposition and step-based collection: the rollout's layout (resets, terminations,
truncations, rollouts that continue one another), the learner's unroll against the Q-values computed while
acting, Q(lambda) targets by hand, the loss against an independent reference, and the commands."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import struct

from command_line import evaluates_and_plots_its_return, qmix_cli
from qmix.algorithms import make_algorithm
from qmix.algorithms.value_decomposition import targets as td
from qmix.config import build_config
from qmix.envs.base import TimeStep
from qmix.episodes import EnvSpec
from qmix.learn.step_collection import run_steps, start_collector

LIMIT = 4  # the toy task's time limit


@struct.dataclass
class ToyState:
    t: jax.Array  # [] int32, steps taken in this episode
    score: jax.Array  # [] float32


class ToyTask:
    """Two agents, two actions: each step pays 1 plus the episode's step count; the task ends (terminated)
    when both agents pick action 1, else the time limit truncates it after LIMIT steps. The observation holds
    the step count and a random number, so every slot is told apart; action 1 is unavailable to agent 1 on
    the first step of an episode."""

    name, n_agents, n_actions, obs_dim, state_dim, episode_limit = "toy", 2, 2, 2, 2, LIMIT
    has_win = True

    def _timestep(self, state, key, reward, terminated):
        noise = jax.random.uniform(key)
        obs = jnp.stack([jnp.stack([state.t / LIMIT, noise]), jnp.stack([noise, state.t / LIMIT])])
        avail = jnp.ones((2, 2), bool).at[0, 1].set(state.t > 0)
        return TimeStep(obs=obs, state=jnp.stack([state.t / LIMIT, state.score]), avail_actions=avail,
                        reward=jnp.asarray(reward, jnp.float32), terminated=jnp.asarray(terminated),
                        truncated=jnp.asarray(False), won=jnp.asarray(terminated))

    def reset(self, key):
        state = ToyState(jnp.zeros((), jnp.int32), jnp.zeros((), jnp.float32))
        return state, self._timestep(state, key, 0.0, False)

    def step(self, key, state, actions):
        reward = 1.0 + state.t
        state = ToyState(state.t + 1, state.score + reward)
        return state, self._timestep(state, key, reward, (actions == 1).all())


SPEC = EnvSpec.of(ToyTask())


def pqn(alg="pqn_vdn", **settings):
    config = build_config(alg=alg, map="two_step", num_envs=6, rollout_steps=12, agent_hidden_dim=8, epochs=2,
                          minibatches=2, mixing_embed_dim=4, hypernet_embed_dim=8, obs_last_action=True, **settings)
    return make_algorithm(config, SPEC)


def test_q_lambda_targets_on_a_step_rollout_by_hand():
    """One row of six steps: a step, a termination, a new episode's step, a truncation, the step that
    resets after it (not filled), and a step ending the rollout, which bootstraps from the slot after it."""
    rewards = jnp.array([[1.0, 2.0, 3.0, 4.0, 0.0, 5.0]])
    terminated = jnp.array([[False, True, False, False, False, False]])
    filled = jnp.array([[True, True, True, True, False, True]])
    next_values = jnp.array([[10.0, 20.0, 30.0, 40.0, 50.0, 60.0]])[..., None]  # V of slots 1..6
    y = td.lambda_targets(rewards, terminated, filled, next_values, gamma=0.9, lam=0.5)[0, :, 0]
    g5 = 5 + 0.9 * 60  # the rollout's last step: bootstraps from slot 6
    g3 = 4 + 0.9 * 40  # truncated: bootstraps from the final observation in slot 4, no trace beyond
    g2 = 3 + 0.9 * (0.5 * 30 + 0.5 * g3)
    g1 = 2.0  # terminated
    g0 = 1 + 0.9 * (0.5 * 10 + 0.5 * g1)
    np.testing.assert_allclose(np.asarray(y)[[0, 1, 2, 3, 5]], [g0, g1, g2, g3, g5], rtol=1e-6)


@pytest.fixture(scope="module")
def two_rollouts():
    """Two consecutive rollouts of 6 toy environments under an exploring policy, with the Q-values every
    `act` computed, recorded as it ran: (algorithm, state, [rollouts], [totals], [acting Q [L, E, N, A]])."""
    algorithm = pqn()
    recorded = []
    plain_act = algorithm.act

    def recording_act(policy, actor_state, key, obs, avail):
        hidden, last_actions = actor_state
        _, q = algorithm.agent_values(policy.agent, hidden, obs, last_actions)
        jax.debug.callback(lambda q: recorded.append(np.asarray(q)), q, ordered=True)
        return plain_act(policy, actor_state, key, obs, avail)

    algorithm.act = recording_act
    state = algorithm.init(jax.random.PRNGKey(0))
    policy = algorithm.acting_policy(state, jnp.int32(0))  # epsilon 1: every kind of ending happens
    collect = jax.jit(lambda key, collector: run_steps(algorithm, ToyTask(), policy, key, collector, 12))
    collector = start_collector(algorithm, ToyTask(), jax.random.PRNGKey(1), 6)
    rollouts, totals, acting_q = [], [], []
    for k in range(2):
        collector, rollout, total = collect(jax.random.PRNGKey(10 + k), collector)
        jax.effects_barrier()
        rollouts.append(rollout)
        totals.append(total)
        acting_q.append(np.stack(recorded[-12:]))
    algorithm.act = plain_act
    return algorithm, state, rollouts, totals, acting_q


def test_a_rollout_resets_at_episode_ends_and_keeps_a_truncated_episodes_final_observation(two_rollouts):
    _, _, rollouts, totals, _ = two_rollouts
    kinds_seen = set()
    for rollout, total in zip(rollouts, totals, strict=True):
        steps = jax.device_get(rollout.steps)
        starts = np.asarray(rollout.starts)
        count = steps.obs[..., 0, 0] * LIMIT  # [E, L+1] the step count each slot was seen at
        for e in range(6):
            for t in range(12):
                if not steps.filled[e, t]:  # the reset after a truncation: nothing happens, nothing is paid
                    assert steps.truncated[e, t - 1] if t else not starts[e, 0]
                    assert starts[e, t + 1] and count[e, t + 1] == 0 and steps.rewards[e, t] == 0
                    kinds_seen.add("reset step")
                elif steps.terminated[e, t]:
                    assert starts[e, t + 1] and count[e, t + 1] == 0  # the next slot is a new episode's first
                    kinds_seen.add("terminated")
                elif steps.truncated[e, t]:  # the final observation, in the same episode
                    assert count[e, t] == LIMIT - 1 and count[e, t + 1] == LIMIT and not starts[e, t + 1]
                    kinds_seen.add("truncated")
                else:
                    assert count[e, t + 1] == count[e, t] + 1 and not starts[e, t + 1]
                assert starts[e, t] == (count[e, t] == 0)
                if steps.filled[e, t]:  # an agent never takes an unavailable action
                    assert steps.avail[e, t][np.arange(2), steps.actions[e, t]].all()
        ended = (steps.terminated | steps.truncated).sum()
        assert float(total["episodes"]) == ended
        assert float(total["train_win_rate"]) == steps.terminated.sum()
    assert kinds_seen == {"reset step", "terminated", "truncated"}
    first, second = rollouts  # the second rollout goes on from where the first left off
    np.testing.assert_array_equal(first.steps.obs[:, -1], second.steps.obs[:, 0])
    np.testing.assert_array_equal(first.starts[:, -1], second.starts[:, 0])
    np.testing.assert_array_equal(first.steps.actions[:, -1], second.actor_state[1])


def test_the_learners_unroll_reproduces_the_q_values_computed_while_acting(two_rollouts):
    """Across episode starts inside a rollout and across the rollouts' seam, slot by slot."""
    algorithm, state, rollouts, _, acting_q = two_rollouts
    for rollout, acted in zip(rollouts, acting_q, strict=True):
        unrolled = np.asarray(algorithm.unroll(state.params.agent, rollout))  # [E, L+1, N, A]
        np.testing.assert_allclose(unrolled[:, :-1], np.swapaxes(acted, 0, 1), rtol=1e-5, atol=1e-6)
        assert rollout.starts[:, 1:-1].any(), "no episode started inside the rollout"


@pytest.mark.parametrize("alg, reward_scale", [("pqn_vdn", 1.0), ("pqn_qmix", 0.1)])
def test_the_loss_equals_an_independent_reference(alg, reward_scale, two_rollouts):
    """Q(lambda) of the online values written out step by step in numpy, VDN's sum or QMIX's mixer, on the
    rewards times reward_scale."""
    algorithm = pqn(alg, q_lambda=0.7, gamma=0.9, reward_scale=reward_scale)
    _, _, (rollout, _), _, _ = two_rollouts
    state = algorithm.init(jax.random.PRNGKey(3))
    loss, metrics = algorithm.loss(state.params, rollout)
    q = np.asarray(algorithm.unroll(state.params.agent, rollout))
    s = jax.device_get(rollout.steps)

    def q_tot(chosen, slots):  # [E, L', N] utilities, the slots they were seen in -> [E, L']
        if alg == "pqn_vdn":
            return chosen.sum(-1)
        from qmix.nets.mixers import MixerInput
        x = MixerInput(jnp.asarray(chosen, jnp.float32), jnp.asarray(q[:, slots]), jnp.zeros(chosen.shape, jnp.int32),
                       jnp.asarray(s.state[:, slots]), jnp.asarray(s.avail[:, slots]))
        return np.asarray(algorithm.mixer.apply(state.params.mixer, x))[..., 0]

    taken = q_tot(np.take_along_axis(q[:, :-1], s.actions[..., None], -1)[..., 0], slice(0, -1))  # [E, L]
    v_next = q_tot(np.where(s.avail[:, 1:], q[:, 1:], -np.inf).max(-1), slice(1, None))  # [E, L]
    errors = []
    for e in range(6):
        g = None
        for t in reversed(range(12)):
            last = t == 11 or not s.filled[e, t + 1]
            bootstrap = v_next[e, t] if last or g is None else 0.3 * v_next[e, t] + 0.7 * g
            g = reward_scale * s.rewards[e, t] + (0.0 if s.terminated[e, t] else 0.9 * bootstrap)
            if s.filled[e, t]:
                errors.append(taken[e, t] - g)
    np.testing.assert_allclose(float(loss), np.mean(np.square(errors)), rtol=1e-4)
    assert np.isfinite(float(metrics["q_taken_mean"]))


def test_an_update_makes_epochs_times_minibatches_steps_and_counts_what_it_learned_from(two_rollouts):
    algorithm, state, (rollout, _), _, _ = two_rollouts
    new, metrics, steps = jax.jit(algorithm.update)(state, rollout, jax.random.PRNGKey(5))
    assert int(steps) == 2 * 2 and int(new.env_steps) == int(rollout.steps.filled.sum())
    assert float(metrics["lr"]) == pytest.approx(2.5e-4)
    assert all(np.isfinite(float(v)) for v in metrics.values())
    assert not np.allclose(jax.tree.leaves(new.params)[0], jax.tree.leaves(state.params)[0])


def test_pqn_trains_evaluates_and_plots_from_the_command_line(tmp_path, capsys):
    run = tmp_path / "pqn"
    code, out, err = qmix_cli(capsys, "train", "--alg", "pqn_qmix", "--map", "two_step", "--out", str(run),
                              "--no-progress", "--env-steps", "96", "num_envs=4", "rollout_steps=8",
                              "minibatches=2", "test_interval_env_steps=32", "test_interval_episodes=0",
                              "test_episodes=2", "final_evaluation_episodes=4", "agent_hidden_dim=8")
    assert code == 0, err
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["env_steps"] for r in records] == [0, 32, 64, 96]
    # 2-step episodes; 3 rollouts of epochs (4) x minibatches (2) gradient steps
    assert records[-1]["episodes"] == 48 and records[-1]["updates"] == 3 * 4 * 2
    assert {"loss", "q_taken_mean", "lr", "epsilon", "test_return"} <= set(records[-1])
    evaluates_and_plots_its_return(capsys, run, tmp_path)
    code, out, err = qmix_cli(capsys, "two-step", "--alg", "pqn_vdn", "--seeds", "1", "--episodes", "40")
    assert code == 0 and "Q_tot" in out, err


def test_pqn_refuses_what_it_cannot_do_in_one_line(capsys):
    code, _, err = qmix_cli(capsys, "train", "--alg", "pqn_vdn", "--map", "two_step", "num_envs=6", "minibatches=4")
    assert code == 2 and "minibatches (4) must divide num_envs (6)" in err and len(err.strip().splitlines()) == 1


def test_a_killed_and_resumed_pqn_run_equals_the_uninterrupted_one(tmp_path):
    """The environments, the acting state and the running episodes are in the checkpoint: a resumed run
    steps on exactly where the killed one stood."""
    from qmix.build import make_trainer
    from qmix.run import resume, train
    from test_resume import QUIET, Killed, assert_same_run, kill_at_checkpoint

    # the command-line run's programs (the test above): only its budget and schedules differ
    config = build_config(preset="default", alg="pqn_qmix", map="two_step", num_envs=4, rollout_steps=8,
                          minibatches=2, env_steps=160, test_interval_env_steps=32, test_interval_episodes=0,
                          test_episodes=2, checkpoint_interval_env_steps=64, final_evaluation_episodes=0,
                          agent_hidden_dim=8)
    trainer = make_trainer(config)
    train(config, tmp_path / "uninterrupted", trainer=trainer, **QUIET)
    with pytest.raises(Killed):
        train(config, tmp_path / "run", trainer=trainer, on_checkpoint=kill_at_checkpoint(1), **QUIET)
    resume(tmp_path / "run", trainer=trainer, **QUIET)
    assert_same_run(tmp_path / "run", tmp_path / "uninterrupted")


def test_a_run_starts_strongly_typed_so_the_loop_compiles_once():
    """SMAX's state holds weakly typed numbers; the loop returns them strongly typed, and a runner that
    changed type between two calls would compile the loop a second time."""
    from qmix.build import make_trainer
    from qmix.learn.loop import seed_keys

    trainer = make_trainer(build_config(alg="pqn_vdn", map="3m", num_envs=2, rollout_steps=4))
    runners = trainer.init_runs(seed_keys(0, 1))
    assert not [x for x in jax.tree.leaves(runners) if x.weak_type]
