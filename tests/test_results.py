"""Loading run folders, statistics over runs, the results table and the learning-curve figures."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import yaml
from matplotlib.collections import PolyCollection

from qmix.results import stats
from qmix.results.plots import (
    alg_colours,
    build_figure,
    build_learning_curve,
    plot_metric,
    plot_runs,
    write_learning_curve,
)
from qmix.results.runs import load_runs

MAPS = ("3m", "2s3z")
ALGS = ("qmix", "vdn")
SEEDS = (0, 1, 2)
N_TESTS = 11
T_975_DF2 = 4.302652729911275  # Student-t 97.5% quantile, 2 degrees of freedom
FINAL_LEVELS = {"qmix": (0.2, 0.4, 0.6), "vdn": (0.1, 0.1, 0.1)}  # final win rate of seeds 0, 1, 2
SPIKE = 0.9  # qmix seed 0 reaches this once mid-training on every map


def known_curve(alg: str, seed: int) -> tuple[list[int], list[float]]:
    """Win rate rising linearly to the seed's final level, tested at seed-jittered env steps."""
    steps = [10_000 * i + 7 * seed for i in range(N_TESTS)]
    win_rates = [FINAL_LEVELS[alg][seed] * i / (N_TESTS - 1) for i in range(N_TESTS)]
    if alg == "qmix" and seed == 0:
        win_rates[5] = SPIKE
    return steps, win_rates


def write_metrics(path: Path, alg: str, seed: int, truncate_last_line: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = []
    for step, win_rate in zip(*known_curve(alg, seed), strict=True):
        lines.append(json.dumps({"env_steps": step, "train_return": 1.0, "loss": 0.5}))
        lines.append(json.dumps({"env_steps": step, "test_win_rate": win_rate, "test_return": 20 * win_rate}))
    if truncate_last_line:
        lines.append('{"env_steps": 120000, "test_win_ra')  # a run killed while writing
    path.write_text("\n".join(lines) + "\n")


def write_yaml(path: Path, content: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(content))


@pytest.fixture(scope="module")
def runs_root(tmp_path_factory) -> Path:
    """2 maps x 2 algs x 3 seeds; vdn on 2s3z in the multi-seed layout; one run with a cut-off last line."""
    root = tmp_path_factory.mktemp("runs")
    for map_name in MAPS:
        for alg in ALGS:
            if (map_name, alg) == ("2s3z", "vdn"):
                write_multi_seed_run(root / f"20240101-000000-{alg}-{map_name}", alg, map_name)
                continue
            for seed in SEEDS:
                run_dir = root / f"20240101-000000-{alg}-{map_name}-{seed}"
                write_yaml(run_dir / "config.yaml", {"alg": alg, "map": map_name, "seed": seed, "lr": 5e-4})
                truncated = (map_name, alg, seed) == ("3m", "qmix", 1)
                write_metrics(run_dir / "metrics.jsonl", alg, seed, truncate_last_line=truncated)
    return root


def write_multi_seed_run(run_dir: Path, alg: str, map_name: str) -> None:
    write_yaml(run_dir / "config.yaml", {"alg": alg, "map": map_name, "seed": 0, "num_seeds": len(SEEDS)})
    for seed in SEEDS:
        if seed == 2:  # one seed folder carries its own config, the others only their folder name
            write_yaml(run_dir / f"seed_{seed}" / "config.yaml", {"seed": seed})
        write_metrics(run_dir / f"seed_{seed}" / "metrics.jsonl", alg, seed)


@pytest.fixture(scope="module")
def runs(runs_root):
    return load_runs([runs_root])


def runs_of(runs, map_name, alg):
    return [run for run in runs if (run.map, run.alg) == (map_name, alg)]


# --- loading ---


def test_load_finds_every_run_with_its_alg_map_and_seed(runs):
    assert len(runs) == len(MAPS) * len(ALGS) * len(SEEDS)
    found = sorted((run.map, run.alg, run.seed) for run in runs)
    expected = sorted((m, a, s) for m in MAPS for a in ALGS for s in SEEDS)
    assert found == expected


def test_load_reads_the_test_curve_and_skips_train_lines_and_a_cut_off_line(runs):
    run = next(run for run in runs if (run.map, run.alg, run.seed) == ("3m", "qmix", 1))
    steps, win_rates = known_curve("qmix", 1)
    np.testing.assert_array_equal(run.env_steps, steps)
    np.testing.assert_allclose(run.test_win_rate, win_rates)
    np.testing.assert_allclose(run.test_return, 20 * np.asarray(win_rates))


def test_load_accepts_a_single_run_folder_a_multi_seed_folder_and_dedupes(runs_root):
    single = load_runs([runs_root / "20240101-000000-qmix-3m-0"])
    assert [(run.alg, run.map, run.seed) for run in single] == [("qmix", "3m", 0)]
    multi = runs_root / "20240101-000000-vdn-2s3z"
    assert [run.seed for run in load_runs([multi])] == list(SEEDS)
    assert len(load_runs([multi, multi / "seed_1", runs_root])) == len(MAPS) * len(ALGS) * len(SEEDS)


def test_load_treats_a_missing_config_gracefully(tmp_path):
    write_metrics(tmp_path / "bare" / "metrics.jsonl", "vdn", 0)
    (run,) = load_runs([tmp_path])
    assert (run.alg, run.map, run.seed) == ("unknown", "unknown", None)


def test_load_raises_a_clear_error_for_a_path_without_runs(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"No runs in .*empty: no metrics\.jsonl found") as error:
        load_runs([tmp_path / "empty"])
    assert "\n" not in str(error.value)
    with pytest.raises(ValueError, match="does not exist"):
        load_runs([tmp_path / "missing"])


def test_load_raises_when_runs_have_no_test_results_yet(tmp_path):
    run_dir = tmp_path / "fresh"
    run_dir.mkdir()
    (run_dir / "metrics.jsonl").write_text(json.dumps({"env_steps": 100, "loss": 1.0}) + "\n")
    with pytest.raises(ValueError, match="no test results"):
        load_runs([run_dir])


# --- mean and confidence interval ---


def test_mean_ci_matches_the_hand_computed_student_t_interval():
    mean, half_width, n = stats.mean_ci(np.array([[0.2], [0.4], [0.6]]))
    assert mean[0] == pytest.approx(0.4)
    assert half_width[0] == pytest.approx(T_975_DF2 * 0.2 / math.sqrt(3))
    assert half_width[0] == pytest.approx(0.4968, abs=1e-4)
    assert n[0] == 3


def test_mean_ci_gives_a_single_run_a_zero_width_band_and_ignores_nan():
    mean, half_width, n = stats.mean_ci(np.array([[0.3, 0.5], [np.nan, 0.7]]))
    np.testing.assert_allclose(mean, [0.3, 0.6])
    assert half_width[0] == 0.0
    assert half_width[1] == pytest.approx(12.706204736 * math.sqrt(0.02) / math.sqrt(2))
    np.testing.assert_array_equal(n, [1, 2])


def test_curve_stats_interpolates_onto_the_range_all_runs_cover(runs):
    group = runs_of(runs, "3m", "qmix")
    curve = stats.curve_stats(group)
    assert curve.env_steps[0] == 14  # the latest first test (seed 2)
    assert curve.env_steps[-1] == 100_000  # the earliest last test (seed 0)
    assert len(curve.env_steps) == N_TESTS
    # At 100k env steps seeds 1 and 2 are interpolated 7 and 14 steps before their last tests.
    seed_1 = 0.36 + 0.04 * 9_993 / 10_000
    seed_2 = 0.54 + 0.06 * 9_986 / 10_000
    assert curve.mean[-1] == pytest.approx((0.2 + seed_1 + seed_2) / 3)
    assert np.all(curve.n_runs == 3)


def test_curve_stats_extend_keeps_each_run_to_its_own_range():
    first = _toy_run(steps=[0, 10, 20], values=[0.0, 0.5, 1.0])
    second = _toy_run(steps=[5, 15], values=[0.2, 0.4])
    shared = stats.curve_stats([first, second], num_points=4)
    np.testing.assert_allclose(shared.env_steps, [5, 25 / 3, 35 / 3, 15])
    np.testing.assert_allclose(shared.mean[[0, -1]], [(0.25 + 0.2) / 2, (0.75 + 0.4) / 2])
    extended = stats.curve_stats([first, second], num_points=5, extend=True)
    np.testing.assert_allclose(extended.env_steps, [0, 5, 10, 15, 20])
    np.testing.assert_array_equal(extended.n_runs, [1, 2, 2, 2, 1])
    np.testing.assert_allclose(extended.mean, [0.0, 0.225, 0.4, 0.575, 1.0])
    assert extended.ci_half_width[0] == 0.0


def test_common_grid_rejects_curves_that_do_not_overlap():
    with pytest.raises(ValueError, match="do not overlap"):
        stats.common_grid([np.array([0, 10]), np.array([20, 30])])


def _toy_run(steps, values):
    from qmix.results.runs import Run

    steps = np.asarray(steps)
    values = np.asarray(values, dtype=float)
    return Run(Path("toy"), "qmix", "3m", 0, steps, {"test_win_rate": values, "test_return": 20 * values})


# --- table ---


def test_aggregate_table_has_one_row_per_map_and_alg_with_the_right_numbers(runs):
    rows = stats.aggregate_table(runs, bootstrap_reps=200)
    assert [(row.map, row.alg) for row in rows] == [
        ("3m", "qmix"),
        ("3m", "vdn"),
        ("2s3z", "qmix"),
        ("2s3z", "vdn"),
    ]
    qmix = rows[0]
    assert qmix.n_runs == 3
    assert (qmix.env_steps_min, qmix.env_steps_max) == (100_000, 100_014)
    assert qmix.final_mean == pytest.approx(0.4)
    assert qmix.final_ci == pytest.approx(T_975_DF2 * 0.2 / math.sqrt(3))
    bests = [SPIKE, 0.4, 0.6]
    assert qmix.best_mean == pytest.approx(np.mean(bests))
    assert qmix.best_ci == pytest.approx(T_975_DF2 * np.std(bests, ddof=1) / math.sqrt(3))
    assert qmix.iqm == pytest.approx(0.4)  # a 25% trim of three runs drops none
    assert qmix.iqm_low <= qmix.iqm <= qmix.iqm_high
    assert qmix.iqm_low >= 0.2 and qmix.iqm_high <= 0.6
    vdn = rows[1]
    assert (vdn.final_mean, vdn.final_ci) == (pytest.approx(0.1), pytest.approx(0.0))
    assert (vdn.iqm_low, vdn.iqm_high) == (pytest.approx(0.1), pytest.approx(0.1))


def test_aggregate_table_can_average_the_last_few_tests(runs):
    rows = stats.aggregate_table(runs_of(runs, "3m", "vdn"), final_tests=2, bootstrap_reps=200)
    assert rows[0].final_mean == pytest.approx(0.1 * (10 + 9) / 2 / 10)


def test_iqm_trims_the_outer_quarters_and_brackets_the_estimate():
    scores = np.array([0.0, 0.5, 0.6, 0.7, 1.0, 1.0, 0.55, 0.65])
    iqm, low, high = stats.iqm_with_ci(scores, bootstrap_reps=500)
    assert iqm == pytest.approx(np.mean(np.sort(scores)[2:6]))
    assert low < iqm < high


def test_iqm_without_rliable_falls_back_to_the_same_estimate(monkeypatch):
    scores = np.array([0.1, 0.3, 0.5, 0.9])
    monkeypatch.setattr(stats, "_import_rliable", lambda: None)
    iqm, low, high = stats.iqm_with_ci(scores, bootstrap_reps=500)
    assert iqm == pytest.approx(0.4)
    assert low < iqm < high


def test_iqm_interval_of_rliable_agrees_with_the_fallback():
    scores = np.array([0.1, 0.3, 0.5, 0.9, 0.2, 0.6, 0.7, 0.8])
    from_rliable = stats._rliable_iqm_interval(scores, 2000, 0.95, seed=0)
    if from_rliable is None:
        pytest.skip("rliable is not usable here (missing, or arch/pandas versions that do not fit it)")
    from_scipy = stats._scipy_iqm_interval(scores, 2000, 0.95, seed=0)
    np.testing.assert_allclose(from_rliable, from_scipy, atol=0.05)


def test_format_table_markdown_shows_percent_with_ci(runs):
    text = stats.format_table_markdown(stats.aggregate_table(runs, bootstrap_reps=200))
    lines = text.strip().splitlines()
    assert len(lines) == 2 + 4
    assert lines[2].startswith("| 3m | qmix | 3 | 100k |")
    assert f"40.0 ± {100 * T_975_DF2 * 0.2 / math.sqrt(3):.1f}" in lines[2]
    assert "| 10.0 ± 0.0 |" in lines[3]


def test_format_table_markdown_gives_a_single_run_no_interval():
    rows = stats.aggregate_table([_toy_run([0, 10, 20], [0.0, 0.5, 0.75])], bootstrap_reps=200)
    row_line = stats.format_table_markdown(rows).strip().splitlines()[-1]
    assert row_line == "| 3m | qmix | 1 | 20 | 75.0 (n=1) | 75.0 (n=1) | 75.0 (n=1) |"


# --- figures ---


def test_build_figure_draws_a_mean_line_and_ci_band_per_alg_and_the_dashed_heuristic(runs):
    figure = build_figure(runs, heuristic={"3m": 0.5}, title="QMIX on SMAX")
    axes = figure.get_axes()
    assert [ax.get_title() for ax in axes] == list(MAPS)
    for ax in axes:
        bands = [item for item in ax.collections if isinstance(item, PolyCollection)]
        assert len(bands) == len(ALGS)
        solid = [line for line in ax.get_lines() if line.get_linestyle() == "-"]
        assert len(solid) == len(ALGS)
        legend = [text.get_text() for text in ax.get_legend().get_texts()]
        assert "qmix (n=3)" in legend and "vdn (n=3)" in legend
    dashed = [line for line in axes[0].get_lines() if line.get_linestyle() == "--"]
    assert len(dashed) == 1 and list(dashed[0].get_ydata()) == [50.0, 50.0]
    assert not [line for line in axes[1].get_lines() if line.get_linestyle() == "--"]


def test_colours_are_consistent_across_panels_and_unknown_algs_get_spare_ones(runs):
    figure = build_figure(runs)
    colours_per_panel = [
        {line.get_label(): line.get_color() for line in ax.get_lines()} for ax in figure.get_axes()
    ]
    assert colours_per_panel[0] == colours_per_panel[1]
    colours = alg_colours(["qmix", "my_mixer", "another"])
    assert colours["qmix"] == "tab:blue"
    assert colours["my_mixer"] not in {
        colours[alg] for alg in ("qmix", "vdn", "iql", "qmix_ns", "qmix_lin", "vdn_s")
    }
    assert colours["another"] != colours["my_mixer"]


def test_plot_runs_writes_png_and_svg_without_leaving_temp_files(runs, tmp_path):
    paths = plot_runs(runs, tmp_path / "figures" / "win_rate", heuristic={"3m": 0.5, "2s3z": 0.2})
    assert [path.name for path in paths] == ["win_rate.png", "win_rate.svg"]
    assert paths[0].read_bytes().startswith(b"\x89PNG")
    assert b"<svg" in paths[1].read_bytes()[:1000]
    assert sorted(path.name for path in (tmp_path / "figures").iterdir()) == ["win_rate.png", "win_rate.svg"]


def test_plot_metric_plots_the_test_return(runs, tmp_path):
    paths = plot_metric(runs_of(runs, "3m", "qmix"), "test_return", tmp_path / "return.png")
    assert [path.name for path in paths] == ["return.png", "return.svg"]
    figure = build_figure(runs_of(runs, "3m", "qmix"), "test_return")
    (ax,) = figure.get_axes()
    assert ax.get_ylabel() == "test return"
    assert max(ax.get_lines()[0].get_ydata()) > 1.0  # returns are not scaled to percent


def test_legend_shows_the_range_of_runs_averaged_when_curves_extend():
    runs = [_toy_run([0, 10, 20], [0.0, 0.5, 1.0]), _toy_run([5, 15], [0.2, 0.4])]
    (ax,) = build_figure(runs, extend=True).get_axes()
    assert [text.get_text() for text in ax.get_legend().get_texts()] == ["qmix (n=1–2)"]


def test_a_single_run_has_no_band_and_says_n_1():
    (ax,) = build_figure([_toy_run([0, 10, 20], [0.0, 0.5, 1.0])]).get_axes()
    assert not [item for item in ax.collections if isinstance(item, PolyCollection)]
    assert [text.get_text() for text in ax.get_legend().get_texts()] == ["qmix (n=1)"]


def test_plot_command_with_one_run_prints_no_zero_interval(runs_root, tmp_path, capsys):
    import sys

    from qmix import cli

    one_run = runs_root / "20240101-000000-qmix-3m-0"
    sys.argv = ["qmix", "plot", str(one_run), "--out", str(tmp_path / "one")]
    with pytest.raises(SystemExit) as exit_info:
        cli.main()
    assert exit_info.value.code == 0
    printed = capsys.readouterr().out
    assert "(n=1)" in printed and "± 0.0" not in printed and "+- 0.0" not in printed


def test_plot_runs_rejects_an_empty_list(tmp_path):
    with pytest.raises(ValueError, match="no runs given"):
        plot_runs([], tmp_path / "nothing")


def test_plot_command_draws_the_fixture(runs_root, tmp_path, capsys):
    """`qmix plot RUN_DIRS...`: an image per format, a table, one mean line and one band per method."""
    import sys

    from qmix import cli

    out = tmp_path / "figure"
    sys.argv = ["qmix", "plot", str(runs_root), "--out", str(out)]
    with pytest.raises(SystemExit) as exit_info:
        cli.main()
    assert exit_info.value.code == 0
    printed = capsys.readouterr().out
    assert "| 3m | qmix | 3 |" in printed.replace("  ", " ")
    assert (tmp_path / "figure.png").stat().st_size > 0 and (tmp_path / "figure.svg").exists()
    figure = build_figure(load_runs([runs_root]))
    for ax in figure.axes[: len(MAPS)]:
        assert len([line for line in ax.get_lines() if line.get_linestyle() == "-"]) == len(ALGS)
        assert len([c for c in ax.collections if isinstance(c, PolyCollection)]) == len(ALGS)


# --- a run folder's own learning curve ---


def test_write_learning_curve_of_one_run(tmp_path):
    run_dir = tmp_path / "run"
    write_yaml(run_dir / "config.yaml", {"alg": "qmix", "map": "3m", "seed": 4, "num_seeds": 1})
    write_metrics(run_dir / "metrics.jsonl", "qmix", 1)
    paths = write_learning_curve(run_dir)
    assert paths == [run_dir / "learning_curve.png", run_dir / "learning_curve.svg"]
    assert paths[0].read_bytes().startswith(b"\x89PNG") and b"<svg" in paths[1].read_bytes()[:1000]
    assert not [p for p in run_dir.iterdir() if p.name.endswith(".tmp")]
    win_rate, test_return = build_learning_curve(load_runs([run_dir])).get_axes()
    assert win_rate.get_ylabel() == "test win rate (%)" and test_return.get_ylabel() == "test return"
    (line,) = win_rate.get_lines()
    steps, values = known_curve("qmix", 1)
    np.testing.assert_allclose(line.get_xdata(), steps)
    np.testing.assert_allclose(line.get_ydata(), 100 * np.array(values))
    assert [t.get_text() for t in win_rate.get_legend().get_texts()] == ["seed 4"]
    assert not win_rate.collections  # no band


def test_write_learning_curve_of_a_multi_seed_folder_draws_every_seed_and_their_mean(tmp_path):
    run_dir = tmp_path / "seeds"
    write_multi_seed_run(run_dir, "vdn", "2s3z")
    write_learning_curve(run_dir)
    assert (run_dir / "learning_curve.png").stat().st_size > 0
    win_rate, _ = build_learning_curve(load_runs([run_dir])).get_axes()
    labels = [t.get_text() for t in win_rate.get_legend().get_texts()]
    assert labels == ["seed 0", "seed 1", "seed 2", "mean (n=3)"]
    assert win_rate.get_title() == "vdn on 2s3z"


def test_write_learning_curve_without_test_results_raises(tmp_path):
    run_dir = tmp_path / "empty"
    write_yaml(run_dir / "config.yaml", {"alg": "qmix", "map": "3m"})
    (run_dir / "metrics.jsonl").write_text(json.dumps({"env_steps": 10, "loss": 1.0}) + "\n")
    with pytest.raises(ValueError, match="no test results"):
        write_learning_curve(run_dir)


def _fake_training(run_dir):
    """A stand-in for the training loop: it leaves a finished run folder and returns a summary of it."""
    from types import SimpleNamespace

    def train(config, out, force=False, progress=True):
        return SimpleNamespace(run_dir=run_dir, env_steps=[110_000], wall_seconds=1.0, config=config,
                               headline="win_rate", final_test_headline=[0.4], best_test_headline=[0.9])

    return train


def test_train_command_leaves_the_learning_curve_in_the_run_folder(tmp_path, monkeypatch, capsys):
    import sys

    import qmix.run
    from qmix import cli

    run_dir = tmp_path / "run"
    write_yaml(run_dir / "config.yaml", {"alg": "qmix", "map": "3m", "seed": 0})
    write_metrics(run_dir / "metrics.jsonl", "qmix", 0)
    monkeypatch.setattr(qmix.run, "train", _fake_training(run_dir))
    monkeypatch.setattr(sys, "argv", ["qmix", "train", "final_evaluation_episodes=0", "--out", str(run_dir), "--no-progress"])
    with pytest.raises(SystemExit) as exit_info:
        cli.main()
    assert exit_info.value.code == 0
    assert (run_dir / "learning_curve.png").stat().st_size > 0 and (run_dir / "learning_curve.svg").exists()
    assert "warning" not in capsys.readouterr().err


def test_train_command_warns_once_when_the_figure_fails_and_still_succeeds(tmp_path, monkeypatch, capsys):
    import sys

    import qmix.run
    from qmix import cli

    run_dir = tmp_path / "run"
    run_dir.mkdir()  # no metrics.jsonl: nothing to draw
    monkeypatch.setattr(qmix.run, "train", _fake_training(run_dir))
    monkeypatch.setattr(sys, "argv", ["qmix", "train", "final_evaluation_episodes=0", "--out", str(run_dir), "--no-progress"])
    with pytest.raises(SystemExit) as exit_info:
        cli.main()
    assert exit_info.value.code == 0
    captured = capsys.readouterr()
    warnings = [line for line in captured.err.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "no learning curve written" in warnings[0]
    assert "done: qmix on 3m" in captured.out and not list(run_dir.glob("learning_curve.*"))
