"""`qmix reproduce`: the claim checks on known numbers, the plans and their order, and the smoke scale end to
end as Ray tasks."""

import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest

from qmix.files import read_jsonl
from qmix.paper import PAPER_MAPS
from qmix.reproduce import SCALES, ordered, pair_tasks, plan
from qmix.results.report import evaluate_claims
from qmix.results.stats import TableRow
from qmix.sweep.state import RunState, inspect_run


def row(map_name, alg, final):
    return TableRow(map=map_name, alg=alg, n_runs=3, env_steps_min=1, env_steps_max=1, final_mean=final,
                    final_ci=0.0, best_mean=final, best_ci=0.0, iqm=final, iqm_low=final, iqm_high=final)


def test_claims_are_judged_from_the_final_win_rates():
    finals = {
        "3m": {"iql": 0.2, "vdn": 0.8, "qmix": 0.85},
        "2s3z": {"iql": 0.1, "vdn": 0.5, "qmix": 0.9, "qmix_ns": 0.55, "qmix_lin": 0.5, "vdn_s": 0.52},
    }
    table = {m: {a: row(m, a, v) for a, v in algs.items()} for m, algs in finals.items()}
    verdicts = {c.text.split(" (")[0].split(":")[0]: c.verdict for c in evaluate_claims(table, ["3m", "2s3z"], ["2s3z"])}
    assert verdicts["IQL never learns to beat the enemy consistently"] == "reproduced"
    assert verdicts["VDN beats IQL on every map"] == "reproduced"
    assert verdicts["QMIX is the strongest of IQL, VDN, QMIX on every map"] == "reproduced"
    assert verdicts["QMIX's lead over VDN is clearest on the heterogeneous maps"] == "reproduced"
    assert verdicts["QMIX beats all three ablations"] == "reproduced"
    table["3m"]["qmix"] = row("3m", "qmix", 0.7)
    claims = evaluate_claims(table, ["3m", "2s3z"], ["2s3z"])
    strongest = next(c for c in claims if c.text.startswith("QMIX is the strongest"))
    assert strongest.verdict == "not reproduced" and "fails on 3m" in strongest.evidence


def test_plans_cover_both_comparisons_once():
    small = plan(SCALES["small"])
    assert len(small) == len(set(small))
    assert {a for m, a in small if m == "2s3z"} == {"iql", "vdn", "qmix", "qmix_ns", "qmix_lin", "vdn_s"}
    assert {a for m, a in small if m == "8m"} == {"iql", "vdn", "qmix"}
    assert SCALES["paper"].seeds == 20


def test_the_medium_scale_does_qmix_on_all_six_maps_first():
    medium = SCALES["medium"]
    assert (medium.seeds, medium.env_steps, medium.maps) == (3, 1_000_000, list(PAPER_MAPS))
    pairs = plan(medium)
    assert len(pairs) == 6 * 3 + 2 * 3  # IQL, VDN, QMIX on six maps; QMIX-NS, QMIX-Lin, VDN-S on 2s3z, 3s5z
    first = ordered(pairs, "qmix-first")
    assert first[:6] == [(m, "qmix") for m in PAPER_MAPS] and sorted(first) == sorted(pairs)
    assert ordered(pairs, "plan") == pairs


def test_the_report_covers_the_whole_plan_whichever_maps_are_trained():
    from qmix.reproduce import report_plan

    medium = SCALES["medium"]
    assert plan(medium, ["3s5z"]) == [("3s5z", a) for a in ["iql", "vdn", "qmix", "qmix_ns", "qmix_lin", "vdn_s"]]
    assert report_plan(medium, ["3s5z"]) == report_plan(medium) == plan(medium)
    beyond = report_plan(medium, ["25m"])  # a map outside the scale joins the report beside the scale's own
    assert len(beyond) == len(set(beyond)) and set(beyond) == set(plan(medium)) | set(plan(medium, ["25m"]))


def test_big_maps_split_their_seeds_to_fit_the_memory_of_a_node(tmp_path):
    tasks = pair_tasks(SCALES["medium"], [("3m", "qmix"), ("1c3s5z", "qmix")], tmp_path, memory_limit=13 * 10**9)
    assert [t.name for t in tasks] == ["3m-qmix", "1c3s5z-qmix/seed_0", "1c3s5z-qmix/seed_1", "1c3s5z-qmix/seed_2"]
    assert all(t.memory <= 13 * 10**9 for t in tasks)


@pytest.mark.slow  # Ray and twelve small trainings: minutes (CI runs the slow set)
def test_smoke_scale_runs_end_to_end(tmp_path, capsys):
    from qmix import cli

    out = tmp_path / "repro"
    sys.argv = ["qmix", "reproduce", "--scale", "smoke", "--out", str(out), "--no-progress"]
    with pytest.raises(SystemExit) as exit_info:
        cli.main()
    assert exit_info.value.code == 0
    report = (out / "report.md").read_text()
    for part in ("The paper's claims", "two-step game", "heuristic baseline", "main.png", "ablations.png"):
        assert part in report
    assert (out / "main.png").stat().st_size > 0 and (out / "ablations.svg").exists()
    for image in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", report):
        assert (out / image).is_file(), image  # every figure the report shows is beside it
    evaluations = sorted((out / "runs").glob("*/evaluation.json"))  # each task evaluated its run
    assert len(evaluations) == 6 and all(len(json.loads(e.read_text())["runs"]) == 2 for e in evaluations)
    assert "| 3m | qmix | 2 of 2 | 4 |" in report
    # a second call skips every finished run, and only evaluates the one whose evaluation went missing
    (out / "runs" / "3m-vdn" / "evaluation.json").unlink()
    capsys.readouterr()
    sys.argv = ["qmix", "reproduce", "--scale", "smoke", "--out", str(out), "--no-progress"]
    with pytest.raises(SystemExit) as exit_info:
        cli.main()
    assert exit_info.value.code == 0
    printed = capsys.readouterr().out
    assert printed.count("skipped ") == 5 and "done     3m-vdn: trained before; greedy win rate" in printed
    assert (out / "runs" / "3m-vdn" / "evaluation.json").is_file()


def test_the_report_links_a_figure_only_when_it_is_there(tmp_path, monkeypatch):
    from qmix.results import report
    from qmix.results.runs import Run

    steps = np.array([0, 10, 20])
    runs = [Run(Path(f"run{s}"), "qmix", "3m", s, steps, {"test_win_rate": np.array([0.0, 0.5, 0.6]),
                                                              "test_return": np.array([1.0, 5.0, 9.0])})
            for s in range(2)]
    lines = report._comparison_section("Main", tmp_path, "main", runs, {}, "note")
    assert "![Main](main.png)" in lines and (tmp_path / "main.png").is_file()

    monkeypatch.setattr(report, "plot_runs", lambda runs, stem, **kwargs: [tmp_path / "gone.png"])
    lines = report._comparison_section("Gone", tmp_path, "gone", runs, {}, "note")
    assert not [line for line in lines if line.startswith("![")]



def _finished_run(folder: Path, config) -> None:
    """A run folder as `qmix train` leaves it, with stand-in parameter bytes (no training needed here)."""
    from qmix.config import config_to_yaml
    from qmix.run_folder import write_parameter_manifest

    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(config_to_yaml(config))
    (folder / "metrics.jsonl").write_text(json.dumps({"env_steps": config.env_steps, "test_win_rate": 0.5}) + "\n")
    (folder / "params.msgpack").write_bytes(b"\x80" * 64)
    write_parameter_manifest(folder, ["params.msgpack"])
    (folder / "checkpoints" / str(config.env_steps)).mkdir(parents=True)
    (folder / "tensorboard").mkdir()


def test_a_kept_run_comes_back_to_an_empty_storage_as_done_and_its_other_seeds_train_beside_it(tmp_path):
    from qmix.config import replace
    from qmix.reproduce import _keep_finished, pair_config, pair_is_complete
    from qmix.sweep.execute import triage
    from qmix.sweep.keep import restore_kept

    scale, storage, keep = SCALES["smoke"], tmp_path / "storage", tmp_path / "kept"
    base = pair_config(scale, "3m", "qmix")
    _finished_run(storage / "runs" / "3m-qmix" / "seed_0", replace(base, seed=0, num_seeds=1))
    (storage / "report.md").write_text("report\n")
    _keep_finished(scale, [("3m", "qmix")], storage, keep)

    kept = keep / "runs" / "3m-qmix" / "seed_0"
    assert sorted(p.name for p in kept.iterdir()) == ["config.yaml", "kept.json", "metrics.jsonl.gz"]
    assert read_jsonl(kept / "metrics.jsonl").records == [{"env_steps": base.env_steps, "test_win_rate": 0.5}]
    manifest = json.loads((storage / "runs" / "3m-qmix" / "seed_0" / "parameters.json").read_text())
    assert json.loads((kept / "kept.json").read_text())["parameters"] == manifest["files"]
    assert (keep / "report.md").is_file()

    fresh = tmp_path / "fresh"  # a new machine: only the kept folder survived
    assert restore_kept(keep, fresh) == [fresh / "runs" / "3m-qmix" / "seed_0"]
    assert restore_kept(keep, fresh) == []  # what is there already is never touched
    tasks = pair_tasks(scale, [("3m", "qmix")], fresh, memory_limit=None)
    assert [t.name for t in tasks] == ["3m-qmix/seed_0", "3m-qmix/seed_1"]  # seed 1 beside it, not over it
    to_run, skipped = triage(tasks)
    assert [o.task.name for o in skipped] == ["3m-qmix/seed_0"] and [t.name for t in to_run] == ["3m-qmix/seed_1"]
    assert not pair_is_complete(fresh / "runs" / "3m-qmix", scale, "3m", "qmix")

    # a kept copy at another budget is not done
    bigger = replace(base, env_steps=base.env_steps * 2)
    assert inspect_run(fresh / "runs" / "3m-qmix" / "seed_0", replace(bigger, seed=0, num_seeds=1)).state is not RunState.DONE


def test_an_evaluation_made_after_a_run_was_kept_reaches_the_kept_copy_on_the_next_keep(tmp_path):
    from qmix.config import replace
    from qmix.reproduce import _keep_finished, pair_config

    scale, storage, keep = SCALES["smoke"], tmp_path / "storage", tmp_path / "kept"
    run, config = storage / "runs" / "3m-qmix" / "seed_0", replace(pair_config(scale, "3m", "qmix"), num_seeds=1)
    _finished_run(run, config)
    _keep_finished(scale, [("3m", "qmix")], storage, keep)
    kept = keep / "runs" / "3m-qmix" / "seed_0"
    marker = (kept / "kept.json").read_text()
    assert not (kept / "evaluation.json").exists()

    (run / "evaluation.json").write_text('{"win_rate": 0.75}\n')  # `qmix evaluate` on the original folder
    (run / "metrics.jsonl").write_text("changed after keeping\n")  # not a file written after the run ends
    _keep_finished(scale, [("3m", "qmix")], storage, keep)
    assert (kept / "evaluation.json").read_text() == '{"win_rate": 0.75}\n'
    assert (kept / "kept.json").read_text() == marker
    assert read_jsonl(kept / "metrics.jsonl").lines == [json.dumps({"env_steps": config.env_steps, "test_win_rate": 0.5})]


def test_a_finished_run_without_its_evaluation_goes_to_a_worker_and_a_kept_copy_does_not(tmp_path):
    from qmix.config import replace
    from qmix.reproduce import _keep_finished, pair_config
    from qmix.sweep.execute import triage
    from qmix.sweep.plan import task_for

    config = replace(pair_config(SCALES["smoke"], "3m", "qmix"), num_seeds=1)
    storage, keep = tmp_path / "storage", tmp_path / "kept"
    _finished_run(storage / "runs" / "3m-qmix", config)

    def split(out: Path, episodes: int):
        to_run, skipped = triage([task_for(out / "runs", "3m-qmix", config, "3m-qmix", evaluate_episodes=episodes)])
        return len(to_run), len(skipped)

    assert split(storage, 0) == (0, 1)  # no evaluation asked for
    assert split(storage, 4) == (1, 0)  # finished, not evaluated: a worker evaluates it
    _keep_finished(SCALES["smoke"], [("3m", "qmix")], storage, keep)
    assert split(keep, 4) == (0, 1)  # a kept copy has no parameters to play
    (storage / "runs" / "3m-qmix" / "evaluation.json").write_text("{}")
    assert split(storage, 4) == (0, 1)


def test_a_kept_run_cannot_be_evaluated_and_says_where_its_parameters_are(tmp_path, capsys):
    from qmix import cli
    from qmix.config import replace
    from qmix.reproduce import _keep_finished, pair_config

    scale = SCALES["smoke"]
    _finished_run(tmp_path / "s" / "runs" / "3m-qmix" / "seed_0", replace(pair_config(scale, "3m", "qmix"), num_seeds=1))
    _keep_finished(scale, [("3m", "qmix")], tmp_path / "s", tmp_path / "k")
    sys.argv = ["qmix", "evaluate", str(tmp_path / "k" / "runs" / "3m-qmix" / "seed_0"), "--episodes", "2"]
    with pytest.raises(SystemExit) as exit_info:
        cli.main()
    assert exit_info.value.code == 2
    assert "is a kept summary" in capsys.readouterr().err


def test_seed_group_one_gives_one_task_per_seed(tmp_path):
    tasks = pair_tasks(SCALES["medium"], [("3m", "qmix")], tmp_path, memory_limit=None, seed_group=1)
    assert [t.name for t in tasks] == ["3m-qmix/seed_0", "3m-qmix/seed_1", "3m-qmix/seed_2"]


def test_the_report_tables_the_greedy_evaluations_of_each_pair_with_a_t_interval(tmp_path):
    from qmix.results.evaluations import evaluation_section, pair_evaluations

    def evaluation(folder: Path, win_rates: list[float], params: str = "final", name: str = "evaluation.json"):
        folder.mkdir(parents=True, exist_ok=True)
        runs = [{"episodes": 512, "win_rate": w} for w in win_rates]
        (folder / name).write_text(json.dumps({"params": params, "runs": runs}))

    pair = tmp_path / "runs" / "1c3s5z-qmix_ns"
    evaluation(pair / "seed_0", [0.80])
    evaluation(pair / "seed_1", [0.90])
    evaluation(pair / "seed_1", [0.10], params="checkpoint", name="evaluation_checkpoint_100.json")  # not final
    evaluation(tmp_path / "runs" / "3m-qmix", [0.5, 0.5, 0.5])  # three seeds side by side in one folder
    (tmp_path / "runs" / "5m-vdn").mkdir()  # finished, not evaluated: no row

    rows = pair_evaluations([pair, tmp_path / "runs" / "3m-qmix", tmp_path / "runs" / "5m-vdn"], runs_per_pair=3)
    assert [(r.map, r.alg, r.win_rates) for r in rows] == [("1c3s5z", "qmix_ns", [0.8, 0.9]), ("3m", "qmix", [0.5] * 3)]
    lines = evaluation_section(rows)
    # two runs: mean 85.0, half-width t(0.975, 1) * sd / sqrt(2) = 12.7062 * 0.070711 / 1.41421 = 0.63531
    assert "| 1c3s5z | qmix_ns | 2 of 3 | 512 | 85.0 ± 63.5 | 80.0, 90.0 |" in lines
    assert "| 3m | qmix | 3 of 3 | 512 | 50.0 ± 0.0 | 50.0, 50.0, 50.0 |" in lines
    assert evaluation_section([]) == []


def test_a_kept_metrics_line_holds_the_counters_and_the_test_metrics_to_float32_precision():
    from qmix.sweep.keep import thin_metrics

    line = {"env_steps": 1000, "episodes": 40, "wall_seconds": 12.345678912, "loss": 0.5,
            "test_return": 2.8993983268737793, "test_win_rate": 0.0, "test_length": 44.4375}
    assert json.loads(thin_metrics(json.dumps(line) + "\n")) == {
        "env_steps": 1000, "episodes": 40, "wall_seconds": 12.345678912,
        "test_return": 2.899398, "test_win_rate": 0.0, "test_length": 44.4375}


def test_a_kept_log_is_compressed_the_same_bytes_each_time_and_read_by_the_results_like_a_plain_one(tmp_path):
    from qmix.config import replace
    from qmix.reproduce import _keep_finished, pair_config
    from qmix.results.runs import load_runs

    scale, storage, keep = SCALES["smoke"], tmp_path / "storage", tmp_path / "kept"
    _finished_run(storage / "runs" / "3m-qmix" / "seed_0", replace(pair_config(scale, "3m", "qmix"), num_seeds=1))
    kept = keep / "runs" / "3m-qmix" / "seed_0"
    kept.mkdir(parents=True)
    (kept / "metrics.jsonl").write_text('{"env_steps": 1, "test_win_rate": 0.1}\n')  # kept plain by an older version
    _keep_finished(scale, [("3m", "qmix")], storage, keep)
    assert not (kept / "metrics.jsonl").exists()  # one copy of the log, the compressed one
    first = (kept / "metrics.jsonl.gz").read_bytes()
    (kept / "kept.json").unlink()  # kept again from scratch
    _keep_finished(scale, [("3m", "qmix")], storage, keep)
    assert (kept / "metrics.jsonl.gz").read_bytes() == first  # no time stamp in the gzip header

    from_kept, from_storage = load_runs([keep]), load_runs([storage])
    assert [r.tests["test_win_rate"].tolist() for r in from_kept] == [[0.5]]
    assert [r.tests["test_win_rate"].tolist() for r in from_kept] == [r.tests["test_win_rate"].tolist() for r in from_storage]
