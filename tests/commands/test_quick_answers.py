"""A missing or broken `--config`, a command's `--help` and an unknown option are answered without importing
Lightning."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from owsd.cli import main
from owsd.commands import quick_answers
from owsd.commands.quick_answers import (
    SHIPPED,
    SLOW_TO_PARSE,
    help_text,
    installation,
    option_names,
    option_of,
    takes,
)
from owsd.commands.write_help import live_help
from tests.conftest import REPO, TINY_CONFIG, refusal

PROBE = """
import sys
from pathlib import Path
import owsd.commands.quick_answers
from owsd.cli import main
owsd.commands.quick_answers.SHIPPED = Path({shipped!r})
try:
    main({args!r})
except SystemExit as exit_:
    print(f"exit {{exit_.code}}", file=sys.stderr)
print("imported:" + "".join(" " + name for name in ("torch", "lightning") if name in sys.modules), file=sys.stderr)
"""


def fresh(args: list[str], env: dict[str, str] | None = None, shipped: Path = SHIPPED) -> subprocess.CompletedProcess:
    """`owsd ARGS` through `owsd.cli.main` in a fresh interpreter, reporting its exit and the heavy imports it
    made; its shipped help texts in `shipped`."""
    environment = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    probe = PROBE.format(args=args, shipped=str(shipped))
    return subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=environment, timeout=120)


@pytest.mark.parametrize("command", ["fit", "run", "attack", "analyze", "train-cloud"])
def test_a_missing_or_broken_config_is_refused_before_lightning_is_imported(tmp_path, command):
    """Before: every such command took 6-7 s on an idle machine (12-38 s under load) to say so."""
    broken = tmp_path / "broken.yaml"
    broken.write_text("data:\n  batch_size: [1,\n")
    for config, says in ((tmp_path / "nothere.yaml", "nothere.yaml does not exist"), (broken, "line 3, column 1")):
        result = fresh([command, "--config", str(config), "--out", str(tmp_path / "out")])
        lines = result.stderr.strip().splitlines()
        assert lines[0].startswith("owsd: error: --config") and says in lines[0], result.stderr
        assert lines[1:] == ["exit 2", "imported:"], result.stderr
    assert sorted(path.name for path in tmp_path.iterdir()) == ["broken.yaml"]


def test_an_unreadable_config_is_one_line(workdir, capsys):
    (workdir / "folder.yaml").mkdir()
    assert "--config folder.yaml cannot be read" in refusal(["fit", "--config", "folder.yaml"], capsys)


def test_help_is_kept_after_its_first_printing_and_then_printed_without_lightning(tmp_path, monkeypatch, capsys):
    """Where the shipped texts are not for this installation (other library versions, an edited copy)."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(quick_answers, "SHIPPED", tmp_path / "none shipped")
    with pytest.raises(SystemExit) as exit_:
        main(["fit", "--help"])
    first = capsys.readouterr().out
    assert exit_.value.code == 0 and "--data.scrambler.key_file" in first
    assert [path.name.split("-")[0] for path in (tmp_path / "owsd" / "help").iterdir()] == ["fit"]
    again = fresh(["fit", "--help"], {"XDG_CACHE_HOME": str(tmp_path)}, shipped=tmp_path / "none shipped")
    assert again.stdout == first and again.stderr.strip().splitlines() == ["exit 0", "imported:"]


def test_the_shipped_help_is_this_installations_and_answers_a_first_help_without_lightning(tmp_path, monkeypatch):
    """Before: the first `owsd fit --help` of an installation took the full start (9.9 s on an idle machine).
    Fails after an edit to owsd until `python -m owsd.commands.write_help` writes the texts again."""
    stamp = json.loads((SHIPPED / "installation.json").read_text())
    this = installation()
    assert (stamp["sources"], stamp["python"]) == (this["sources"], this["python"]), (
        "owsd's sources changed: run `python -m owsd.commands.write_help`"
    )
    assert sorted(path.stem for path in SHIPPED.glob("*.txt")) == sorted(SLOW_TO_PARSE)
    empty_home = {"XDG_CACHE_HOME": str(tmp_path)}
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    if stamp["libraries"] != this["libraries"]:  # another release of Lightning or jsonargparse: not used
        assert help_text("fit", this) is None
        return
    assert live_help("fit") == (SHIPPED / "fit.txt").read_text()
    first = fresh(["fit", "--help"], empty_home)
    assert first.stdout == (SHIPPED / "fit.txt").read_text()
    assert first.stderr.strip().splitlines() == ["exit 0", "imported:"]
    assert not (tmp_path / "owsd").exists()  # nothing kept: the shipped text answers


def options_of(command: str) -> set[str]:
    """The option names in `command`'s help text (printing it once in a fresh process if none is at hand)."""
    if help_text(command) is None:
        subprocess.run([sys.executable, "-m", "owsd", command, "--help"], capture_output=True, check=True, timeout=300)
    return option_names(help_text(command))


@pytest.mark.parametrize(
    "command, option, meant",
    [("fit", "--modle.lr", "model.lr"), ("run", "--data.scrambler.keyfile", "data.scrambler.key_file"),
     ("attack", "--model.hiden_size", "model.hidden_size"), ("predict", "--no_such_option", None)],
)  # fmt: skip
def test_an_unknown_option_is_refused_before_lightning_is_imported(tmp_path, command, option, meant):
    """Before: the parser had to be built to say so, 10 s on an idle machine (`benchmarks/busy_machine.py`)."""
    options_of(command)
    result = fresh(
        [command, "--config", str(TINY_CONFIG), option, "1"], {"XDG_CACHE_HOME": os.environ["XDG_CACHE_HOME"]}
    )
    lines = result.stderr.strip().splitlines()
    hint = f"; did you mean {meant}?" if meant else ""
    assert lines[0] == f"owsd {command}: error: unknown setting {option[2:]}{hint}", result.stderr
    assert lines[1:] == [f"(`owsd {command} --help` lists every setting)", "exit 2", "imported:"]


def test_every_option_a_parser_may_take_passes_the_quick_check():
    names = options_of("fit")
    assert all(takes(names, name) for name in names)
    may_take = [
        "--trainer.max_ep",  # argparse takes a unique prefix
        "--data.source.init_args.root",  # an open class (`--data.source.help`) takes its init_args
        "--data.source.root",
        "--trainer.max_time.days",  # a dict setting takes a key
        "--trainer.logger.init_args.save_dir",
    ]
    assert [option for option in may_take if not takes(names, option)] == []
    never = ["--model.hiden_size", "--modle", "--data.scrambler.defences.rotate_evry", "--trainer.max_epochs.x.y"]
    assert [option for option in never if takes(names, option)] == never[3:]  # a leaf's key: the parser decides


def test_the_options_the_readme_and_benchmarks_give_pass_the_quick_check():
    """A quick refusal of an option the parser would take would break a documented command line."""
    given: list[tuple[str, str]] = []
    for document in [REPO / "README.md", *REPO.glob("docs/**/*.md"), *REPO.glob("benchmarks/*.sh")]:
        for command, rest in re.findall(r"owsd ([a-z][\w-]*)(.*)", document.read_text()):
            given += [(command, option_of(option)) for option in re.findall(r"--[A-Za-z][\w.+-]*", rest)
                      if command in SLOW_TO_PARSE]  # fmt: skip
    assert len(given) > 50
    refused = [(c, o) for c, o in given if not takes(options_of(c), o)]
    assert [(c, o) for c, o in refused if o != "--no_such_option"] == []  # the docs' example of a mistake
