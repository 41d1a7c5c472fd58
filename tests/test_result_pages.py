"""Every figure a result page states is in the results it comes from, so a page cannot drift from a rerun.

A figure is a decimal number on the page (`0.480`, `47.8%`, `3.6–3.9%`). It is found when the Markdown
reports of the page's results folders print it (a percentage also as a fraction: 47.8% as 0.478), or when a
number of their JSON files rounds to it. Per-key details (`per_key`) are left out: thousands of numbers would
match almost any figure."""

import json
import re

import pytest

from tests.conftest import REPO

# page → the results folders it quotes, and the figures on it that come from elsewhere (with why).
PAGES = {
    "security.md": (["results/security"], {"4.3": "the paper's entropy", "1.97": "the paper's entropy"}),
    "replication.md": (
        ["results/security", "results/offline", "results/sweeps"],
        {
            "4.3": "the paper's entropy",
            "1.97": "the paper's entropy",
            "0.07%": "the paper's Table 5",
            "0.52%": "the paper's Table 5",
            "0.267": "the guides' runs of the CIFAR config, not a results folder",
        },
    ),
    "paper-experiments.md": (
        ["results/offline"],
        {
            "0.970": "the cloud's training log (runs/offline/clouds, not committed)",
            "63.5%": "the figure before the IIN loader fix",
            "83.3%": "the figure before the IIN loader fix",
            "39.0": "2,340 s in minutes",
        },
    ),
    "regime-search.md": (
        ["results/offline"],
        {
            "0.92": "the clouds' training logs (not committed)",
            "0.90": "the clouds' training logs (not committed)",
        },
    ),
}
# A decimal, or a range of two (`3.6–3.9%`), not part of a longer number, a word, `§5.2` or `3.7e-3`.
FIGURE = re.compile(r"(?<![\w.§])([−-]?\d+\.\d+)(?:–([−-]?\d+\.\d+))?(%?)(?!\d|\.\d|e[-+\d])")


def measured(folders: list[str]) -> tuple[list[float], str]:
    """Every number in the folders' JSON files, and the text of their Markdown reports."""
    numbers: list[float] = []

    def collect(value) -> None:
        if isinstance(value, dict):
            value = [item for key, item in value.items() if key != "per_key"]
        if isinstance(value, list):
            for item in value:
                collect(item)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            numbers.append(float(value))

    texts = []
    for folder in folders:
        for path in sorted((REPO / folder).rglob("*")):
            if path.suffix == ".json":
                collect(json.loads(path.read_text()))
            elif path.suffix == ".md":
                texts.append(path.read_text())
    return numbers, "\n".join(texts)


def printed(text: str, reports: str) -> bool:
    """Whether the reports print `text` as a number of its own (0.48 is not in 0.480)."""
    return re.search(rf"(?<![\d.]){re.escape(text)}(?![\d])", reports) is not None


def unsourced(page: str, folders: list[str], quoted: dict[str, str]) -> list[str]:
    numbers, reports = measured(folders)
    missing = []
    for figure in FIGURE.finditer((REPO / "docs" / "results" / page).read_text()):
        percent = figure.group(3) == "%"
        for text in filter(None, figure.group(1, 2)):
            if text in quoted or text + "%" in quoted:
                continue
            value, decimals = float(text.replace("−", "-")), len(text.split(".")[1])
            if percent:
                value, decimals = value / 100, decimals + 2
            if printed(text, reports) or printed(f"{value:.{decimals}f}", reports):
                continue
            if not any(round(number, decimals) == round(value, decimals) for number in numbers):
                missing.append(text + ("%" if percent else ""))
    return missing


@pytest.mark.parametrize("page", sorted(PAGES))
def test_every_figure_on_a_result_page_is_in_the_results_it_quotes(page):
    folders, quoted = PAGES[page]
    assert unsourced(page, folders, quoted) == []


def test_a_figure_no_results_file_holds_is_found(tmp_path, monkeypatch):
    """The check itself: the page's first figure, changed to 7.481 (no results file holds it), is reported."""
    page = (REPO / "docs" / "results" / "security.md").read_text()
    first = FIGURE.search(page).group(1)
    (tmp_path / "docs" / "results").mkdir(parents=True)
    (tmp_path / "docs" / "results" / "security.md").write_text(page.replace(first, "7.481", 1))
    (tmp_path / "results").symlink_to(REPO / "results")
    monkeypatch.setattr(f"{__name__}.REPO", tmp_path)
    assert unsourced("security.md", ["results/security"], PAGES["security.md"][1]) == ["7.481"]


@pytest.mark.parametrize(
    "folder, command",
    [
        ("results/security", r"owsd attack .*\.keys\.seed 0.*"),
        ("results/security/analysis", r"owsd analyze .*\.keys\.seed 0.*"),
        ("results/imagenet_folder_smoke", r"benchmarks/imagenet_folder_smoke\.py --out results/imagenet_folder_smoke"),
        ("results/sweeps/iin_size", r"owsd sweep sweeps/iin_size\.yaml --trials 12 .*"),
    ],
)
def test_results_record_their_commit_command_machine_and_wall_time(folder, command):
    record = json.loads((REPO / folder / "provenance.json").read_text())
    assert re.fullmatch(r"[0-9a-f]{40}", record["commit"]), "a commit, without changes beside it"
    assert re.fullmatch(command, record["command"]), record["command"]
    assert record["machine"]["cpu_count"] >= 1 and record["wall_seconds"] > 0
