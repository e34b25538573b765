"""Checkpoints on their own: exact round trip, replay optional, the last few kept, unusable ones skipped."""

import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from qmix.algorithms.value_decomposition.algorithm import Params, ValueDecompositionState
from qmix.checkpoint import CHECKPOINT_FOLDER, MARKER, CheckpointError, CheckpointStore
from qmix.learn.loop import RunnerState

SETTINGS = {"map": "3m", "lr": 0.001, "env_steps": 600}


def small_runners(value: float) -> RunnerState:
    """A RunnerState of the real structure (seed axis of 1) with small arrays, every leaf set from `value`."""

    def full(shape, dtype=jnp.float32):
        return jnp.full((1, *shape), value, dtype)

    params = Params(agent={"params": {"w": full((3, 2))}}, mixer={"params": {"b": full((2,))}})
    target = Params(agent={"params": {"w": full((3, 2)) - 1}}, mixer={"params": {"b": full((2,)) - 1}})
    adam = optax.ScaleByAdamState(count=full((), jnp.int32), mu=params, nu=target)
    alg = ValueDecompositionState(params, target, (optax.EmptyState(), adam), full((), jnp.int32))
    # flashbax keeps its write index weakly typed, as here
    replay = {"obs": full((4, 5)), "filled": full((4,), bool), "current_index": jax.lax.full((1,), int(value))}
    return RunnerState(
        alg=alg,
        replay=replay,
        key=jax.random.split(jax.random.PRNGKey(int(value)), 1),
        env_steps=full((), jnp.int32),
        episodes=full((), jnp.int32),
        updates=full((), jnp.int32),
        update_credit=full(()) / 3,
    )


def fresh_replay():
    return small_runners(0).replay


def host(step: int) -> dict:
    return {"config": SETTINGS, "loop": {"step": step, "history": [[{"loss": float("nan"), "win": 0.25}]]}}


def assert_same_tree(a, b):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        assert x.dtype == y.dtype and x.weak_type == y.weak_type  # else the training loop compiles again
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def save_steps(run_dir, steps, keep=5, save_replay=True):
    store = CheckpointStore(run_dir, keep)
    for step in steps:
        store.save(step, small_runners(step), host(step), save_replay)
    store.close()


def restore(run_dir, keep=5):
    store = CheckpointStore(run_dir, keep, create=False)
    try:
        return store.restore_latest(lambda: small_runners(0), fresh_replay, SETTINGS)
    finally:
        store.close()


def newest_array_file(run_dir, step):
    """The largest data file of the step's arrays (the replay, when saved)."""
    files = [p for p in (run_dir / CHECKPOINT_FOLDER / str(step)).rglob("*") if p.is_file() and p.name != MARKER]
    return max(files, key=lambda p: p.stat().st_size)


def test_the_whole_state_round_trips_exactly(tmp_path):
    save_steps(tmp_path, [100])
    restored = restore(tmp_path)
    assert restored.step == 100 and restored.replay_restored and not restored.skipped
    assert_same_tree(restored.runners, small_runners(100))
    assert not any(x.committed for x in jax.tree.leaves(restored.runners))  # placed like fresh arrays
    assert restored.host["config"] == SETTINGS
    assert math.isnan(restored.host["loop"]["history"][0][0]["loss"])  # NaN survives the JSON
    assert restored.host["loop"]["history"][0][0]["win"] == 0.25


def test_without_the_replay_the_restored_replay_is_the_fresh_one(tmp_path):
    save_steps(tmp_path, [100], save_replay=False)
    assert not (tmp_path / CHECKPOINT_FOLDER / "100" / "replay").exists()
    restored = restore(tmp_path)
    assert not restored.replay_restored
    assert_same_tree(restored.runners.replay, small_runners(0).replay)
    assert_same_tree(restored.runners.alg, small_runners(100).alg)


def test_only_the_last_keep_checkpoints_stay(tmp_path):
    save_steps(tmp_path, [100, 200, 300, 400], keep=2)
    assert sorted(p.name for p in (tmp_path / CHECKPOINT_FOLDER).iterdir()) == ["300", "400"]


def test_an_unfinished_checkpoint_is_never_picked_up(tmp_path):
    save_steps(tmp_path, [100, 200])
    (tmp_path / CHECKPOINT_FOLDER / "200" / MARKER).unlink()  # stopped between orbax's rename and the marker
    half = tmp_path / CHECKPOINT_FOLDER / "300.orbax-checkpoint-tmp"  # stopped while orbax was writing
    (half / "runner").mkdir(parents=True)
    (half / "runner" / "d").write_bytes(b"\0" * 10)
    restored = restore(tmp_path)
    assert restored.step == 100
    assert_same_tree(restored.runners, small_runners(100))
    assert len(restored.skipped) == 1 and "200" in restored.skipped[0] and "unfinished" in restored.skipped[0]


@pytest.mark.parametrize(
    "damage, reason",
    [
        (lambda path: path.unlink(), "missing"),
        (lambda path: path.write_bytes(path.read_bytes()[: path.stat().st_size // 2]), "truncated"),
        (lambda path: path.write_bytes(bytes([path.read_bytes()[0] ^ 1]) + path.read_bytes()[1:]), "corrupted"),
    ],
    ids=["deleted", "truncated", "bit-flipped"],
)
def test_a_damaged_newest_checkpoint_is_skipped_for_the_previous(tmp_path, damage, reason):
    save_steps(tmp_path, [100, 200])
    damage(newest_array_file(tmp_path, 200))
    restored = restore(tmp_path)
    assert restored.step == 100
    assert_same_tree(restored.runners, small_runners(100))
    assert "200" in restored.skipped[0] and reason in restored.skipped[0]


def test_the_error_is_clear_when_no_checkpoint_is_usable(tmp_path):
    save_steps(tmp_path, [100, 200])
    for step in (100, 200):
        newest_array_file(tmp_path, step).write_bytes(b"")
    with pytest.raises(CheckpointError, match="no usable checkpoint") as error:
        restore(tmp_path)
    message = str(error.value)
    assert "\n" not in message and "100" in message and "200" in message and "truncated" in message


def test_the_error_is_clear_when_there_is_no_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint"):
        restore(tmp_path)
    (tmp_path / CHECKPOINT_FOLDER).mkdir()
    with pytest.raises(CheckpointError, match="no checkpoint"):
        restore(tmp_path)


def test_a_checkpoint_of_other_settings_is_refused(tmp_path):
    save_steps(tmp_path, [100])
    store = CheckpointStore(tmp_path, 2, create=False)
    with pytest.raises(CheckpointError, match="other settings.*lr"):
        store.restore_latest(lambda: small_runners(0), fresh_replay, {**SETTINGS, "lr": 0.5, "env_steps": 900})
    assert store.restore_latest(lambda: small_runners(0), fresh_replay, {**SETTINGS, "env_steps": 900}).step == 100
    store.close()


def test_a_setting_the_checkpoint_does_not_name_is_a_change(tmp_path):
    save_steps(tmp_path, [100])
    store = CheckpointStore(tmp_path, 2, create=False)
    with pytest.raises(CheckpointError, match="other settings.*lr_schedule: None in the checkpoint, 'constant' now"):
        store.restore_latest(lambda: small_runners(0), fresh_replay, {**SETTINGS, "lr_schedule": "constant"})
    store.close()


def test_a_checkpoint_of_an_earlier_format_gets_one_line_naming_it(tmp_path):
    save_steps(tmp_path, [100])
    store = CheckpointStore(tmp_path, 2)
    host_file = store.path(100) / "host" / "metadata"  # orbax keeps a JSON item in this file
    saved = json.loads(host_file.read_text())
    host_file.write_text(json.dumps({**saved, "format": 1}))
    store._mark_complete(100)  # a whole, verified checkpoint, only older
    with pytest.raises(CheckpointError, match=r"has format 1 \(written by an earlier version of qmix\); this "
                                              r"version reads format 2"):
        store.restore_latest(lambda: small_runners(0), fresh_replay, SETTINGS)
    store.close()


def test_discard_after_removes_the_newer_steps(tmp_path):
    save_steps(tmp_path, [100, 200, 300])
    store = CheckpointStore(tmp_path, 5)
    assert store.discard_after(100) == [200, 300]
    assert store.steps() == [100]
    store.close()


def test_the_marker_lists_every_file_with_its_size(tmp_path):
    save_steps(tmp_path, [100])
    folder = tmp_path / CHECKPOINT_FOLDER / "100"
    files = json.loads((folder / MARKER).read_text())["files"]
    on_disk = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file() and p.name != MARKER}
    assert set(files) == on_disk
    assert all(files[name]["bytes"] == (folder / name).stat().st_size for name in files)
