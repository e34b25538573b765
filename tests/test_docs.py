"""The documentation stays small and whole: a size cap on docs/, parameter files only among the pretrained
policies, every relative link and image of README.md and docs/**/*.md pointing at a file that exists, and
every script of the studies and benchmarks importing against today's library."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PRETRAINED = DOCS / "pretrained"
# Kept runs (thinned metrics, compressed; each run's config, evaluations), figures and the few pretrained
# policies: 3.30 MB with the QMIX family's first six SMAX tasks (5.19 MB before the logs were compressed).
DOCS_CAP_BYTES = 4_000_000
PARAMETER_SUFFIXES = (".msgpack", ".npz", ".npy", ".pkl", ".pickle", ".pt", ".pth", ".ckpt", ".safetensors", ".h5")
CHECKPOINT_MARKERS = ("_CHECKPOINT_METADATA", "_METADATA", "qmix_complete.json", "manifest.ocdbt")
# [text](target) and ![alt](target); the target ends at whitespace or the closing parenthesis
MARKDOWN_LINK = re.compile(r"!?\[(?:[^\]\\]|\\.)*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HTML_SOURCE = re.compile(r"<(?:img|a)\s[^>]*(?:src|href)=\"([^\"]+)\"", re.IGNORECASE)
FENCE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)
INLINE_CODE = re.compile(r"`[^`\n]*`")


def scripts() -> list[Path]:
    """The Python scripts readers run: the benchmarks and the studies' analyses."""
    return [*sorted((ROOT / "benchmarks").glob("*.py")), *sorted(DOCS.rglob("*.py"))]


def markdown_files() -> list[Path]:
    return [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]


def links(markdown: str) -> list[str]:
    """Link and image targets outside code blocks and inline code."""
    text = INLINE_CODE.sub("", FENCE.sub("", markdown))
    return MARKDOWN_LINK.findall(text) + HTML_SOURCE.findall(text)


def is_external(target: str) -> bool:
    return bool(re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE)) or target.startswith("//")


def is_parameter_store(path: Path) -> bool:
    """Network parameters, checkpoints or training logs that are not a run's small summary."""
    name = path.name
    if path.is_dir():
        return name in ("checkpoints", "tensorboard", "snapshots") or ".orbax" in name
    return name.lower().endswith(PARAMETER_SUFFIXES) or name in CHECKPOINT_MARKERS


def test_docs_stay_under_the_size_cap():
    files = [path for path in DOCS.rglob("*") if path.is_file()]
    total = sum(path.stat().st_size for path in files)
    largest = sorted(files, key=lambda path: path.stat().st_size, reverse=True)[:5]
    listing = ", ".join(f"{path.relative_to(ROOT)} ({path.stat().st_size:,} B)" for path in largest)
    assert total < DOCS_CAP_BYTES, f"docs/ holds {total:,} bytes (cap {DOCS_CAP_BYTES:,}); largest: {listing}"


def test_parameter_files_only_among_the_pretrained_policies():
    outside = [path for path in DOCS.rglob("*") if not path.is_relative_to(PRETRAINED) and is_parameter_store(path)]
    assert not outside, "parameter or checkpoint files outside docs/pretrained/: " + ", ".join(
        str(path.relative_to(ROOT)) for path in sorted(outside))


def test_pretrained_policies_are_minimal_run_folders_listed_in_pretrained_md():
    folders = sorted(path for path in PRETRAINED.iterdir() if path.is_dir())
    assert folders, "no pretrained policies"
    table = (DOCS / "pretrained.md").read_text()
    for folder in folders:
        assert {p.name for p in folder.iterdir()} <= {"config.yaml", "params.msgpack", "parameters.json",
                                                      "averaged_agent.msgpack",
                                                      "evaluation.json", "evaluation_averaged.json"}
        assert (folder / "config.yaml").is_file() and (folder / "params.msgpack").is_file()
        assert (folder / "evaluation.json").is_file()
        assert f"| {folder.name} |" in table, f"docs/pretrained.md has no row for {folder.name}"


@pytest.mark.parametrize("markdown_file", markdown_files(), ids=lambda path: str(path.relative_to(ROOT)))
def test_every_relative_link_and_image_resolves(markdown_file):
    broken = []
    for target in links(markdown_file.read_text(encoding="utf-8")):
        if is_external(target) or target.startswith("#"):
            continue  # web addresses are not fetched; anchors within the page are not checked
        path_part = unquote(target.split("#", 1)[0].split("?", 1)[0])
        if not (markdown_file.parent / path_part).exists():
            broken.append(target)
    assert not broken, f"{markdown_file.relative_to(ROOT)} links to missing files: {', '.join(broken)}"


def test_the_link_finder_sees_links_and_images_but_not_code():
    text = "see [a](docs/a.md#part) and ![fig](b.png)\n`[c](c.md)`\n```\n[d](d.md)\n```\n<img src=\"e.svg\">"
    assert links(text) == ["docs/a.md#part", "b.png", "e.svg"]
    assert is_external("https://arxiv.org/abs/1803.11485") and not is_external("docs/usage.md")


def test_the_readme_stays_short():
    assert (ROOT / "README.md").stat().st_size < 5 * 1024


def test_the_paper_is_cited_not_a_private_summary_of_it():
    private_summary = "PAPER" + ".md"  # not part of the project: readers have the paper, not that file
    for path in [*markdown_files(), *scripts()]:
        assert private_summary not in path.read_text(encoding="utf-8"), path.relative_to(ROOT)


@pytest.mark.parametrize("script", scripts(), ids=lambda path: str(path.relative_to(ROOT)))
def test_every_study_and_benchmark_script_imports(script, monkeypatch):
    """Loaded as a module, not run: an import of a renamed or removed library name fails here, cheaply."""
    source = script.read_text(encoding="utf-8")
    assert 'if __name__ == "__main__":' in source, f"{script.relative_to(ROOT)} runs on import (no main guard)"
    name = "docs_script_" + "_".join(script.relative_to(ROOT).with_suffix("").parts).replace("-", "_")
    spec = importlib.util.spec_from_file_location(name, script)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, name, module)  # dataclasses look their module up while it loads
    monkeypatch.syspath_prepend(str(script.parent))  # as when run: its folder's helper modules import
    spec.loader.exec_module(module)
