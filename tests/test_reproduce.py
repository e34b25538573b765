"""`qmix reproduce`: the claim checks on known numbers, and the smoke scale end to end."""

import re
import sys
from pathlib import Path

import numpy as np
import pytest

from qmix.reproduce import SCALES, plan
from qmix.results.report import evaluate_claims
from qmix.results.stats import TableRow


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
    # a second call reuses every finished run
    sys.argv = ["qmix", "reproduce", "--scale", "smoke", "--out", str(out), "--no-progress"]
    with pytest.raises(SystemExit):
        cli.main()
    assert capsys.readouterr().out.count("reusing") == 6


def test_parallel_workers_share_the_pairs(tmp_path, monkeypatch):
    """A pair another process is training (its lock held) is skipped; the lock goes when its holder ends."""
    from qmix import reproduce as rep
    from qmix.results import report

    trained = []
    monkeypatch.setattr(rep, "two_step_results", lambda scale, out: {})
    monkeypatch.setattr(rep, "heuristic_results", lambda scale, maps, out: {})
    monkeypatch.setattr(report, "write_report", lambda out, *args: out / "report.md")
    monkeypatch.setattr(rep, "run_pair", lambda scale, m, a, out, progress: trained.append((m, a)))
    busy = tmp_path / "runs" / "3m-vdn"
    with rep.claim(busy) as mine:
        assert mine
        with rep.claim(busy) as again:
            assert not again  # a second claim, as another process would make it, fails
        rep.reproduce("smoke", tmp_path, progress=False)
    assert ("3m", "vdn") not in trained and ("3m", "iql") in trained and ("3m", "qmix") in trained
    with rep.claim(busy) as mine:
        assert mine  # released


def test_the_report_links_a_figure_only_when_it_is_there(tmp_path, monkeypatch):
    from qmix.results import report
    from qmix.results.runs import Run

    steps = np.array([0, 10, 20])
    runs = [Run(Path(f"run{s}"), "qmix", "3m", s, steps, np.array([0.0, 0.5, 0.6]), np.array([1.0, 5.0, 9.0]))
            for s in range(2)]
    lines = report._comparison_section("Main", tmp_path, "main", runs, {}, "note")
    assert "![Main](main.png)" in lines and (tmp_path / "main.png").is_file()

    monkeypatch.setattr(report, "plot_runs", lambda runs, stem, **kwargs: [tmp_path / "gone.png"])
    lines = report._comparison_section("Gone", tmp_path, "gone", runs, {}, "note")
    assert not [line for line in lines if line.startswith("![")]
