"""The training loop end to end on 3m: the run folder, seeds side by side, and a short learning run."""

import json

import jax.numpy as jnp
import numpy as np
import pytest
import yaml

from golden_runs import TINY_SMAX
from qmix.algorithms.value_decomposition.algorithm import make_optimizer
from qmix.build import make_trainer
from qmix.config import build_config
from qmix.run import train

# The golden runs' tiny 3m settings, so the programs compiled for them (one seed, two side by side) are
# the programs here: in one test session they are compiled once, through the compilation cache.
TINY = dict(TINY_SMAX, env_steps=400, test_interval_env_steps=150)
WALL_CLOCK = ("wall_seconds", "env_steps_per_second")


def lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def without_wall_clock(records):
    return [{k: v for k, v in r.items() if k not in WALL_CLOCK} for r in records]


@pytest.fixture(scope="module")
def trainer():
    """One trainer for the TINY runs here: seeds are its programs' inputs, so any seed or number of seeds."""
    return make_trainer(build_config(preset="default", **TINY))


def test_a_tiny_run_writes_a_complete_run_folder(trainer, tmp_path):
    config = build_config(preset="default", **TINY)
    summary = train(config, tmp_path / "run", progress=False, trainer=trainer)
    folder = summary.run_dir
    assert yaml.safe_load((folder / "config.yaml").read_text()) == {"config_format": 2, **config.to_dict()}
    records = lines(folder / "metrics.jsonl")
    assert records[0]["env_steps"] == 0 and records[-1]["env_steps"] >= TINY["env_steps"]
    for record in records:
        assert {"env_steps", "test_win_rate", "test_return"} <= set(record)
        assert 0.0 <= record["test_win_rate"] <= 1.0
    assert [r["env_steps"] for r in records] == sorted(r["env_steps"] for r in records)
    assert {"train_return", "epsilon", "loss", "q_taken_mean"} <= set(records[-1])
    assert any((folder / "tensorboard").iterdir())
    assert (folder / "params.msgpack").stat().st_size > 0


def test_seeds_side_by_side_equal_the_same_seeds_one_at_a_time(trainer, tmp_path):
    together = train(build_config(preset="default", seed=3, num_seeds=2, **TINY), tmp_path / "both", progress=False,
                     tensorboard=False, trainer=trainer)
    alone = train(build_config(preset="default", seed=4, **TINY), tmp_path / "alone", progress=False,
                  tensorboard=False, trainer=trainer)
    assert (tmp_path / "both" / "seed_3" / "metrics.jsonl").exists()
    vmapped = without_wall_clock(lines(tmp_path / "both" / "seed_4" / "metrics.jsonl"))
    single = without_wall_clock(lines(tmp_path / "alone" / "metrics.jsonl"))
    assert [r["env_steps"] for r in vmapped] == [r["env_steps"] for r in single]
    for a, b in zip(vmapped, single, strict=True):
        assert a.keys() == b.keys()
        for key in a:
            if a[key] is None or b[key] is None:  # no update yet: no loss to report
                assert a[key] is b[key], key
            else:
                np.testing.assert_allclose(a[key], b[key], rtol=1e-4, atol=1e-5, err_msg=key)
    assert together.env_steps[1] == alone.env_steps[0]


def test_no_unavailable_action_is_stored_in_the_replay(trainer):
    """The replay (TINY: 16 episodes) is read after each of four stretches of training; every episode stored
    since the last read is checked, over 500 steps in all."""
    import jax

    capacity = trainer.config.buffer_size_episodes
    runners, read, checked = trainer.init_runs(jax.random.PRNGKey(0)[None]), 0, 0
    for stop in (400, 800, 1200, 1600):
        runners, _ = trainer.train_runs_until(runners, np.array([stop], np.int32), np.array([stop], np.int32))
        episodes = int(runners.episodes[0])
        assert int(runners.replay.current_index[0]) == episodes % capacity  # episode e sits in slot e % capacity
        slots = [e % capacity for e in range(max(read, episodes - capacity), episodes)]  # the unread ones still held
        replay = runners.replay.experience
        avail = np.asarray(replay.avail[0, 0, slots, :-1])  # [episodes, T, N, A], the slot each action was chosen in
        actions = np.asarray(replay.actions[0, 0, slots])  # [episodes, T, N]
        filled = np.asarray(replay.filled[0, 0, slots])
        chosen_available = np.take_along_axis(avail, actions[..., None], axis=-1)[..., 0]
        assert chosen_available[filled].all()
        read, checked = episodes, checked + int(filled.sum())
    assert checked > 500


@pytest.mark.slow
def test_qmix_learns_3m_above_the_random_policy(tmp_path):
    config = build_config(preset="default", map="3m", env_steps=60_000, test_interval_env_steps=20_000,
                          test_episodes=32, epsilon_anneal_env_steps=30_000)
    summary = train(config, tmp_path / "learn", progress=False, tensorboard=False)
    first, last = summary.history[0][0], summary.history[0][-1]
    assert first["test_win_rate"] <= 0.1  # the untrained greedy policy
    assert last["test_win_rate"] >= 0.3, summary.history


def _qr_operand_shapes(jaxpr) -> list[tuple[int, ...]]:
    """Shapes of every QR factorisation's operand in a jaxpr, nested calls included."""
    shapes = []
    for eqn in jaxpr.eqns:
        if eqn.primitive.name in ("geqrf", "qr", "householder_product"):
            shapes.append(tuple(eqn.invars[0].aval.shape))
        for value in eqn.params.values():
            for sub in value if isinstance(value, (list, tuple)) else [value]:
                inner = getattr(sub, "jaxpr", sub)
                if hasattr(inner, "eqns"):
                    shapes += _qr_operand_shapes(inner)
    return shapes


def test_runs_start_without_a_batched_qr_and_equal_one_run_each(trainer):
    """The GRU's orthogonal initialisers factorise matrices; vmapped over seeds that became one batched
    LAPACK QR, which could wait forever on XLA:CPU's 2-thread pool. Every QR must be of one matrix."""
    import jax

    from qmix.learn.loop import seed_keys

    keys = seed_keys(0, 3)  # three runs of the TINY trainer
    shapes = _qr_operand_shapes(jax.make_jaxpr(trainer.init_runs)(keys).jaxpr)
    assert shapes and all(len(shape) == 2 for shape in shapes), shapes
    runs = trainer.init_runs(keys)
    for k in range(3):
        alone = trainer.init(keys[k])
        for got, want in zip(jax.tree.leaves(runs.alg), jax.tree.leaves(alone.alg), strict=True):
            np.testing.assert_array_equal(np.asarray(got[k]), np.asarray(want))
        np.testing.assert_array_equal(np.asarray(runs.key[k]), np.asarray(alone.key))


@pytest.mark.parametrize("optimizer", ["adam", "rmsprop"])
def test_step_size_falls_linearly_then_stays(optimizer):
    config = build_config(preset="default", overrides=dict(
        optimizer=optimizer, lr="0.001", lr_schedule="linear", lr_finish="0.0001", lr_anneal_updates="4",
        grad_norm_clip="null"))
    opt = make_optimizer(config.algorithm)
    params = jnp.zeros(())
    state = opt.init(params)
    steps = []
    for _ in range(6):
        # Adam's step under a constant gradient is the step size itself (bias-corrected moments cancel)
        update, state = opt.update(jnp.ones(()), state, params)
        steps.append(-float(update))
    # 0.001 down to 0.0001 in 4 equal steps of 0.000225, then held
    expected = [0.001, 0.000775, 0.00055, 0.000325, 0.0001, 0.0001]
    if optimizer == "adam":
        np.testing.assert_allclose(steps, expected, rtol=1e-4)
    else:  # RMSprop's scaling changes from step to step; the ratio to a constant-size twin is the schedule
        constant = make_optimizer(build_config(preset="default", overrides=dict(
            optimizer=optimizer, lr="0.001", grad_norm_clip="null")).algorithm)
        state, reference = constant.init(params), []
        for _ in range(6):
            update, state = constant.update(jnp.ones(()), state, params)
            reference.append(-float(update))
        np.testing.assert_allclose(np.array(steps) / np.array(reference), np.array(expected) / 0.001, rtol=1e-4)
