"""The output folder: a failure keeps the partial results, the same settings resume them, other settings are
refused, and a replace stopped at any step leaves the old or the new results, never neither."""

import json
import os
import re
import sys

import pytest

from owsd.commands.output import OutputFolder
from owsd.components.cloud import LocalCloud
from owsd.components.scrambler import ScramblerSettings
from owsd.components.timm_models import ModelSpec
from owsd.data.sources import ImageFolderSource
from owsd.errors import ConfigError
from owsd.pipeline import Pipeline
from tests.conftest import TINY_IMAGES


def test_a_failure_keeps_what_was_written_and_the_same_settings_resume_it(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(RuntimeError) as failure, OutputFolder(out, "settings", progress=lambda: "1 of 2") as folder:
        (folder / "first.txt").write_text("done")
        raise RuntimeError("the cloud went away")
    assert failure.value.__notes__ == [f"kept {out}.partial (1 of 2); run the same command again to resume"]
    assert not out.exists()
    with pytest.raises(ConfigError, match="holds an interrupted run with other settings"):
        OutputFolder(out, "other settings").__enter__()
    output = OutputFolder(out, "settings")
    with output as folder:
        assert output.resumed and (folder / "first.txt").read_text() == "done"
        (folder / "second.txt").write_text("done")
    assert sorted(p.name for p in out.iterdir()) == ["first.txt", "provenance.json", "second.txt"]
    assert not (tmp_path / "out.partial").exists()


def test_a_failure_before_anything_was_written_keeps_nothing(tmp_path):
    with pytest.raises(RuntimeError) as failure, OutputFolder(tmp_path / "out", "s"):
        raise RuntimeError("bad input")
    assert failure.value.__notes__ == ["nothing was finished, nothing kept"] and list(tmp_path.iterdir()) == []


def test_existing_results_are_refused_unless_replaced(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("old")
    with pytest.raises(ConfigError, match="already holds files"):
        OutputFolder(out, "s").__enter__()
    with OutputFolder(out, "s", replace=True) as folder:
        (folder / "new.txt").write_text("new")
    assert sorted(p.name for p in out.iterdir()) == ["new.txt", "provenance.json"]
    assert sorted(os.listdir(tmp_path)) == ["out"]


@pytest.mark.parametrize("step", ["marker removed", "old moved aside"])
def test_a_replace_killed_half_way_is_completed_by_the_next_command(tmp_path, step):
    """The two states a kill inside `_finish` can leave: the next command completes the rename."""
    out, partial, replaced = tmp_path / "out", tmp_path / "out.partial", tmp_path / ".out.replaced"
    for folder, name in ((out if step == "marker removed" else replaced, "old.txt"), (partial, "new.txt")):
        folder.mkdir()
        (folder / name).write_text(name)
    with OutputFolder(out, "s", replace=True) as folder:  # a rerun with --replace: completes, then writes anew
        assert list(folder.iterdir()) == [folder / ".owsd-started-with"]
        (folder / "newer.txt").write_text("newer")
    assert sorted(p.name for p in out.iterdir()) == ["newer.txt", "provenance.json"]
    assert sorted(os.listdir(tmp_path)) == ["out"]


def test_a_partial_folder_started_under_another_key_is_refused_naming_the_key(tmp_path):
    def pipeline(key: str) -> Pipeline:
        scrambler = ScramblerSettings(tmp_path / key, create_key=True)
        return Pipeline(ImageFolderSource(TINY_IMAGES), [ModelSpec("test_efficientnet", "random")],
                        LocalCloud("test_resnet", "random"), scrambler)  # fmt: skip

    out, first = tmp_path / "out", pipeline("first.key")
    with pytest.raises(RuntimeError), OutputFolder(out, "settings", pipeline=first) as folder:
        (folder / "runs.jsonl").write_text("{}\n")
        raise RuntimeError("stopped")
    with pytest.raises(ConfigError, match=r"under another key \(data.scrambler.key_file\)") as refused:
        OutputFolder(out, "settings", pipeline=pipeline("second.key")).__enter__()
    assert first.key().fingerprint in str(refused.value)
    with OutputFolder(out, "settings", pipeline=pipeline("first.key")) as folder:
        assert (folder / "runs.jsonl").exists()
    assert sorted(p.name for p in out.iterdir()) == ["provenance.json", "runs.jsonl"]


def test_finished_results_record_their_commit_command_machine_and_wall_time(tmp_path, monkeypatch):
    """Before: `results/` folders did not say which code, command and machine produced them."""
    monkeypatch.setattr(sys, "argv", ["/usr/bin/owsd", "attack", "--config", "demo.yaml", "--out", "x"])
    with OutputFolder(tmp_path / "out", "s") as folder:
        (folder / "result.txt").write_text("1")
    record = json.loads((tmp_path / "out" / "provenance.json").read_text())
    assert record["command"] == "owsd attack --config demo.yaml --out x"
    assert re.fullmatch(r"[0-9a-f]{40}(\+changes)?", record["commit"]), record["commit"]
    assert record["machine"]["cpu_count"] == os.cpu_count() and record["machine"]["cpu"]
    assert 0 <= record["wall_seconds"] < 60 and record["resumed"] is False
