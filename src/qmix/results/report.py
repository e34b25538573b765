"""The reproduction report: tables, figures and each of the paper's claims marked reproduced or not."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np

from qmix.files import write_atomic
from qmix.games import format_matrix
from qmix.results.evaluations import evaluation_section, pair_evaluations
from qmix.results.plots import plot_runs
from qmix.results.runs import load_runs
from qmix.results.stats import TableRow, aggregate_table, format_table_markdown
from qmix.two_step import PAPER_Q_TOT

# SMAC benchmark medians after 2M steps, IQL / VDN / QMIX, in % (the SMAC benchmark, Samvelyan et al., 2019); not the paper's own plots.
SMAC_MEDIANS = {"2s3z": (75, 97, 99), "3s5z": (10, 84, 97), "1c3s5z": (21, 91, 97)}
FINAL_TESTS = 3  # a run's final win rate: the mean of its last three tests (one test of 32 episodes is noisy)
ON_PAR = 0.05  # "on par": final win rates within 5 points


@dataclass
class Claim:
    text: str
    verdict: str  # "reproduced", "not reproduced", "not tested"
    evidence: str


def _final(rows: list[TableRow]) -> dict[str, dict[str, TableRow]]:
    table: dict[str, dict[str, TableRow]] = {}
    for row in rows:
        table.setdefault(row.map, {})[row.alg] = row
    return table


def _pct(x: float) -> str:
    return f"{100 * x:.0f}%"


def _check_per_map(table, maps, algs, holds: Callable[[dict[str, float]], bool], describe) -> tuple[str, str]:
    tested = [m for m in maps if all(a in table.get(m, {}) for a in algs)]
    if not tested:
        return "not tested", "no runs for these methods"
    results = {m: holds({a: table[m][a].final_mean for a in algs}) for m in tested}
    evidence = "; ".join(f"{m}: {describe({a: table[m][a].final_mean for a in algs})}" for m in tested)
    verdict = "reproduced" if all(results.values()) else "not reproduced"
    if verdict == "not reproduced":
        failed = [m for m, ok in results.items() if not ok]
        evidence += f" (fails on {', '.join(failed)})"
    return verdict, evidence


def evaluate_claims(table, main_maps: list[str], ablation_maps: list[str]) -> list[Claim]:
    claims = []

    def add(text, algs, maps, holds, describe):
        verdict, evidence = _check_per_map(table, maps, algs, holds, describe)
        claims.append(Claim(text, verdict, evidence))

    add("IQL never learns to beat the enemy consistently (final win rate below 50% on every map)",
        ["iql"], main_maps, lambda r: r["iql"] < 0.5, lambda r: f"IQL {_pct(r['iql'])}")
    add("VDN beats IQL on every map", ["vdn", "iql"], main_maps, lambda r: r["vdn"] > r["iql"],
        lambda r: f"VDN {_pct(r['vdn'])} vs IQL {_pct(r['iql'])}")
    add("QMIX is the strongest of IQL, VDN, QMIX on every map", ["qmix", "vdn", "iql"], main_maps,
        lambda r: r["qmix"] >= max(r["vdn"], r["iql"]),
        lambda r: f"QMIX {_pct(r['qmix'])}, VDN {_pct(r['vdn'])}, IQL {_pct(r['iql'])}")
    hetero = [m for m in main_maps if m in {"2s3z", "3s5z", "1c3s5z"}]
    homo = [m for m in main_maps if m not in hetero]
    gaps = {m: table[m]["qmix"].final_mean - table[m]["vdn"].final_mean
            for m in main_maps if {"qmix", "vdn"} <= set(table.get(m, {}))}
    if [m for m in hetero if m in gaps] and [m for m in homo if m in gaps]:
        hetero_gap = np.mean([gaps[m] for m in hetero if m in gaps])
        homo_gap = np.mean([gaps[m] for m in homo if m in gaps])
        claims.append(Claim(
            "QMIX's lead over VDN is clearest on the heterogeneous maps",
            "reproduced" if hetero_gap > homo_gap else "not reproduced",
            f"mean QMIX - VDN: heterogeneous {100 * hetero_gap:+.0f} points, homogeneous {100 * homo_gap:+.0f} points",
        ))
    else:
        claims.append(Claim("QMIX's lead over VDN is clearest on the heterogeneous maps", "not tested",
                            "needs runs on both kinds of map"))
    add("QMIX beats all three ablations (QMIX-NS, QMIX-Lin, VDN-S)", ["qmix", "qmix_ns", "qmix_lin", "vdn_s"],
        ablation_maps, lambda r: r["qmix"] > max(r["qmix_ns"], r["qmix_lin"], r["vdn_s"]),
        lambda r: f"QMIX {_pct(r['qmix'])}, QMIX-NS {_pct(r['qmix_ns'])}, QMIX-Lin {_pct(r['qmix_lin'])}, "
                  f"VDN-S {_pct(r['vdn_s'])}")
    add(f"QMIX-NS is on par with (within {ON_PAR:.0%}) or better than VDN", ["qmix_ns", "vdn"], ablation_maps,
        lambda r: r["qmix_ns"] >= r["vdn"] - ON_PAR, lambda r: f"QMIX-NS {_pct(r['qmix_ns'])} vs VDN {_pct(r['vdn'])}")
    add("Non-linear mixing is needed to use the state: QMIX beats QMIX-Lin, which does no better than VDN-S "
        f"(within {ON_PAR:.0%})", ["qmix", "qmix_lin", "vdn_s"], ablation_maps,
        lambda r: r["qmix"] > r["qmix_lin"] and r["qmix_lin"] <= r["vdn_s"] + ON_PAR,
        lambda r: f"QMIX {_pct(r['qmix'])}, QMIX-Lin {_pct(r['qmix_lin'])}, VDN-S {_pct(r['vdn_s'])}")
    return claims


def _two_step_section(two_step: dict) -> list[str]:
    lines = ["## Experiment 1: the two-step game (Table 1)", "",
             "Learned Q_tot, mean over seeds (rows: agent 1's action A/B, columns: agent 2's), and the greedy "
             "policy's return in each seed.", "",
             "| method | state 1 | state 2A | state 2B | greedy returns |", "|---|---|---|---|---|"]
    for alg in ("qmix", "vdn"):
        runs = two_step.get(alg, [])
        if not runs:
            continue
        mean = np.mean([np.asarray(r["q_tot"]) for r in runs], axis=0)
        returns = ", ".join(f"{r['greedy_return']:g}" for r in runs)
        lines.append(f"| {alg.upper()} (ours, {len(runs)} seeds) | " + " | ".join(format_matrix(m) for m in mean)
                     + f" | {returns} |")
        lines.append(f"| {alg.upper()} (paper) | " + " | ".join(format_matrix(m) for m in PAPER_Q_TOT[alg])
                     + f" | {8 if alg == 'qmix' else 7} |")
    qmix_eights = sum(r["greedy_return"] == 8 for r in two_step.get("qmix", []))
    vdn_sevens = sum(r["greedy_return"] == 7 for r in two_step.get("vdn", []))
    lines += ["", f"QMIX's greedy policy earns 8 in {qmix_eights} of {len(two_step.get('qmix', []))} seeds; "
              f"VDN's earns 7 in {vdn_sevens} of {len(two_step.get('vdn', []))}.", ""]
    return lines


def _heuristic_section(heuristic: dict[str, dict]) -> list[str]:
    lines = ["## The heuristic baseline", "",
             "Every ally attacks the closest enemy and keeps that target until it dies (full observability), "
             "against SMAX's scripted enemy; Wilson 95% CI.", "",
             "| map | win rate | 95% CI | episodes | mean return |", "|---|---|---|---|---|"]
    for name, r in heuristic.items():
        lines.append(f"| {name} | {_pct(r['win_rate'])} | {_pct(r['ci_low'])} to {_pct(r['ci_high'])} | "
                     f"{int(r['episodes'])} | {r['mean_return']:.2f} |")
    return [*lines, ""]


def _comparison_section(title, out, stem, runs, heuristic, note) -> list[str]:
    if not runs:
        return [f"## {title}", "", "No runs.", ""]
    paths = plot_runs(runs, out / stem, heuristic={m: r["win_rate"] for m, r in heuristic.items()}, title=title)
    rows = aggregate_table(runs, final_tests=FINAL_TESTS)
    lines = [f"## {title}", "", note, ""]
    lines += _figure_link(title, paths[0], out)
    lines += [f"Final = mean of each run's last {FINAL_TESTS} tests; mean and 95% CI over runs; IQM with a "
              "bootstrap 95% CI.", "", format_table_markdown(rows), ""]
    return lines


def _figure_link(title: str, figure: Path, out: Path) -> list[str]:
    """The Markdown image of a figure in the report's folder, relative to report.md; nothing for a figure
    that is not there, so the report never links a missing image."""
    if not figure.is_file():
        return []
    return [f"![{title}]({figure.resolve().relative_to(out.resolve()).as_posix()})", ""]


def _smac_reference(main_maps) -> list[str]:
    rows = [m for m in main_maps if m in SMAC_MEDIANS]
    if not rows:
        return []
    lines = ["For reference, the SMAC benchmark's median test win rates after 2M steps on the real game "
             "(IQL / VDN / QMIX; Samvelyan et al., The StarCraft Multi-Agent Challenge, arXiv 1902.04043): "
             + "; ".join(f"{m}: {'/'.join(str(v) for v in SMAC_MEDIANS[m])}%" for m in rows) + ".", ""]
    return lines


def write_report(
    out: Path, scale_name: str, scale, pairs, two_step: dict, heuristic: dict, finished: list[Path]
) -> Path:
    """`finished`: the run folders of the (map, algorithm) pairs that have completed; others are listed."""
    main_maps = list(dict.fromkeys(m for m, a in pairs if a in ("iql", "vdn")))
    ablation_maps = list(dict.fromkeys(m for m, a in pairs if a in ("qmix_ns", "qmix_lin", "vdn_s")))
    all_runs = load_runs(finished) if finished else []
    main_runs = [r for r in all_runs if r.alg in ("iql", "vdn", "qmix") and r.map in main_maps]
    ablation_runs = [r for r in all_runs if r.map in ablation_maps and r.alg in ("qmix", "qmix_ns", "qmix_lin", "vdn_s", "vdn")]
    table = _final(aggregate_table(all_runs, final_tests=FINAL_TESTS))
    claims = evaluate_claims(table, main_maps, ablation_maps)

    lines = [f"# Reproduction report: scale `{scale_name}`", "",
             f"{scale.description[:1].upper()}{scale.description[1:]}. Preset `{scale.preset}`, {scale.seeds} seeds per method, "
             f"{scale.env_steps:,} env steps per run, SMAX maps against SMAX's scripted enemy, SMAC-style reward. "
             f"Written {datetime.now():%Y-%m-%d %H:%M}; made by `qmix reproduce --scale {scale_name}`.", "",
             "## The paper's claims (Rashid et al., ICML 2018, Section 7)", "", "| claim | verdict | evidence |", "|---|---|---|"]
    lines += [f"| {c.text} | **{c.verdict}** | {c.evidence} |" for c in claims]
    missing = [f"{alg} on {map_name}" for map_name, alg in pairs
               if not any(p.name == f"{map_name}-{alg}" for p in finished)]
    if missing:
        lines += ["", f"Not run yet ({len(missing)} of {len(pairs)} method-map pairs; "
                  f"`qmix reproduce --scale {scale_name}` continues where this stopped): " + ", ".join(missing) + "."]
    lines += ["", "Final win rates are compared as means over runs; with few seeds, differences inside the "
              "confidence intervals in the tables below are not significant.", ""]
    lines += _two_step_section(two_step)
    lines += _heuristic_section(heuristic)
    lines += _comparison_section("Micromanagement: IQL, VDN, QMIX", out, "main", main_runs, heuristic,
                                 "Test win rate against env steps; mean over runs with a 95% CI band; the "
                                 "heuristic dashed.")
    lines += _smac_reference(main_maps)
    lines += _comparison_section("Ablations: QMIX, QMIX-NS, QMIX-Lin, VDN-S (and VDN)", out, "ablations",
                                 ablation_runs, heuristic, "The same protocol on the ablation maps.")
    lines += evaluation_section(pair_evaluations(finished, scale.seeds))
    path = out / "report.md"
    write_atomic(path, "\n".join(lines) + "\n")
    return path
