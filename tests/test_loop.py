"""The generic loop: the finished-seed write-back, and an on-policy algorithm of the test's own through it."""

import json
from dataclasses import dataclass

import flashbax as fbx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from qmix.algorithms import ALGORITHMS
from qmix.config import build_config
from qmix.episodes import Episodes
from qmix.learn.write_back import keep_if_inactive, store
from qmix.run import train
from qmix.settings import setting


def test_an_inactive_run_keeps_its_state_and_its_replay():
    buffer = fbx.make_item_buffer(max_length=3, min_length=1, sample_batch_size=1, add_batches=True)
    replay = buffer.init({"x": jnp.zeros(())})
    replay = store(buffer, replay, {"x": jnp.array([1.0, 2.0])}, jnp.array(True), 3)
    assert replay.experience["x"][0].tolist() == [1.0, 2.0, 0.0] and int(replay.current_index) == 2
    kept = store(buffer, replay, {"x": jnp.array([7.0, 8.0])}, jnp.array(False), 3)  # slots 2 and 0 written back
    assert kept.experience["x"][0].tolist() == [1.0, 2.0, 0.0]
    assert int(kept.current_index) == 2 and not bool(kept.is_full)
    added = store(buffer, replay, {"x": jnp.array([7.0, 8.0])}, jnp.array(True), 3)  # wraps around
    assert added.experience["x"][0].tolist() == [8.0, 2.0, 7.0] and bool(added.is_full)
    new, old = {"a": jnp.ones(2), "b": jnp.int32(5)}, {"a": jnp.zeros(2), "b": jnp.int32(3)}
    assert jax.tree.map(int, keep_if_inactive(jnp.array(False), {"b": new["b"]}, {"b": old["b"]})) == {"b": 3}
    np.testing.assert_array_equal(keep_if_inactive(jnp.array(True), new, old)["a"], [1.0, 1.0])


@dataclass(frozen=True)
class CountingSettings:
    first_action: int = setting(0, "the action every agent takes")

    def validate(self, config) -> None:
        pass


class CountSteps:
    """An on-policy algorithm that learns nothing: it counts the real steps of every batch it is given."""

    uses_replay = False

    def __init__(self, settings, spec):
        self.settings, self.spec = settings, spec

    def init(self, key):
        return {"steps_seen": jnp.zeros((), jnp.int32)}

    def example_item(self):
        return Episodes.empty(self.spec)

    def acting_policy(self, state, env_steps):
        return jnp.int32(self.settings.first_action)

    def test_policies(self, state):
        return {"": jnp.int32(self.settings.first_action)}

    def initial_actor_state(self, n_envs):
        return jnp.zeros((n_envs,), jnp.int32)

    def act(self, policy, actor_state, key, obs, avail):
        return actor_state, jnp.full(avail.shape[:-1], policy, jnp.int32)

    def update(self, state, batch, key, axis_name=None):
        steps = batch.filled.sum().astype(jnp.int32)
        return {"steps_seen": state["steps_seen"] + steps}, {"batch_steps": steps.astype(jnp.float32)}, jnp.int32(1)

    def after_iteration(self, state, episodes):
        return state

    def status(self, env_steps):
        return {}

    def saved_parameters(self, state):
        return {"params": state}

    def policy_from_saved(self, name, tree):
        return jnp.int32(self.settings.first_action)


@pytest.fixture
def counting_algorithm():
    ALGORITHMS.add("count_steps", CountSteps, "counts the steps it learns from", settings=CountingSettings)
    yield "count_steps"
    ALGORITHMS.remove("count_steps")


def test_an_on_policy_algorithm_learns_from_each_iterations_episodes(tmp_path, counting_algorithm):
    config = build_config(alg=counting_algorithm, map="two_step", num_envs=3, env_steps=60, test_episodes=2,
                          test_interval_env_steps=30, batch_size=1, buffer_size_episodes=3)
    summary = train(config, tmp_path / "run", progress=False, tensorboard=False)
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    # two-step episodes are 2 steps: every update sees 3 episodes x 2 steps, one update per iteration
    assert [r["batch_steps"] for r in records[1:]] == [6.0, 6.0]
    assert [r["updates"] for r in records] == [0, 5, 10] and summary.env_steps == [60]
    assert records[-1]["test_return"] == 7.0  # action 0 twice: the top-left cell of state 2A


def test_a_process_shares_a_trainer_between_settings_of_the_same_programs_only(monkeypatch):
    import qmix.build
    from qmix.build import KEPT_TRAINERS, make_trainer

    first = make_trainer(build_config(preset="two_step"))
    assert make_trainer(build_config(preset="two_step")) is first  # traced and compiled once per process
    session_only = dict(seed=1, num_seeds=3, env_steps=50, test_interval_env_steps=7, test_interval_episodes=3,
                        final_evaluation_episodes=2, checkpoint_interval_env_steps=9, keep_checkpoints=5,
                        save_replay=True, tag="x")
    assert make_trainer(build_config(preset="two_step", **session_only)) is first
    for change in ({"batch_size": 16}, {"test_episodes": 2}, {"num_envs": 2}, {"lr": 0.1}, {"map": "matrix_game"}):
        assert make_trainer(build_config(preset="two_step", **change)) is not first, change  # its own programs
    for k in range(KEPT_TRAINERS):  # the last few are kept, the oldest dropped
        make_trainer(build_config(preset="two_step", batch_size=10 + k))
    assert make_trainer(build_config(preset="two_step")) is not first

    class HostSide(qmix.build.Trainer):  # games stepped from Python (real StarCraft II) close with their run
        def __init__(self, *args):
            super().__init__(*args)
            self.host_side = True

    monkeypatch.setattr(qmix.build, "Trainer", HostSide)
    config = build_config(preset="two_step", batch_size=3)  # programs no trainer here has
    assert make_trainer(config) is not make_trainer(config)
