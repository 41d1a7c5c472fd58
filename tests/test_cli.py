"""`owsd` end to end on the tiny CI config, and the command line's answers to bad input."""

import importlib
import re
import shutil
import signal
import socket
import stat
import sys
from pathlib import Path

import pytest
import torch
import yaml
from jsonargparse import Namespace

from owsd.cli import COMMANDS, main
from owsd.commands.settings import experiment_parser
from owsd.commands.train_cloud import parser as train_cloud_parser
from owsd.components.key import load_key
from owsd.components.timm_models import ModelSpec
from owsd.errors import ConfigError
from owsd.interrupts import Interrupted
from owsd.serving.client import RemoteCloud
from tests.conftest import REPO, TINY_IMAGES, refusal, run_owsd, tiny_args
from tests.key_scan import assert_no_key_material, key_material


def test_fit_prints_test_accuracy_for_iin_ablations_and_upper_bound(workdir, capsys):
    main(tiny_args(workdir, "--compare", "[embedding, cloud, embedding+plaintext_cloud]"))
    out = capsys.readouterr().out
    assert "OWSD test accuracy on 10 images" in out
    for row in ("IIN embedding+cloud (OWSD)", "IIN embedding (", "IIN cloud (", "IIN embedding+plaintext_cloud ("):
        assert row in out
    assert "linear probe on the embedding (sends nothing)" in out
    assert list((workdir / "runs").rglob("embedding+cloud-*.ckpt")), "best checkpoint is kept"


def test_test_subcommand_evaluates_a_saved_checkpoint(workdir, capsys):
    main(tiny_args(workdir))
    (checkpoint,) = (workdir / "runs").rglob("embedding+cloud-*.ckpt")
    capsys.readouterr()
    main(tiny_args(workdir, "--ckpt_path", str(checkpoint), subcommand="test"))
    assert "test/embedding+cloud/top1" in capsys.readouterr().out


def test_key_never_reaches_config_dumps_checkpoints_or_logs(workdir, capsys, caplog, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    wandb = ["--trainer.logger+=lightning.pytorch.loggers.CSVLogger", f"--trainer.logger.save_dir={workdir / 'runs'}"]
    wandb += [
        "--trainer.logger+=lightning.pytorch.loggers.WandbLogger",
        f"--trainer.logger.save_dir={workdir / 'runs'}",
    ]
    main(tiny_args(workdir, *wandb))
    printed = capsys.readouterr()
    with pytest.raises(SystemExit) as exit_:
        main(tiny_args(workdir, "--print_config"))
    dump = capsys.readouterr()
    assert exit_.value.code == 0 and "key_file:" in dump.out
    key = load_key(workdir / "keys" / "test.key")
    forms = key_material(key, ModelSpec("test_efficientnet", "random").embedding_dim, size=32, channels=64)
    written = [p for p in (workdir / "runs").rglob("*") if p.is_file()]
    assert any(p.suffix == ".ckpt" for p in written) and any(p.name == "config.yaml" for p in written)
    assert any(p.suffix == ".wandb" for p in written), "the wandb run was written offline"
    cache = [p for p in (workdir / "cache").rglob("*") if p.is_file()]
    assert any(p.suffix == ".bin" for p in cache), cache  # the cached rows themselves
    text = printed.out + printed.err + caplog.text + dump.out + dump.err
    assert_no_key_material(forms, written + cache, text)
    assert load_key(workdir / "keys" / "test.key").fingerprint in caplog.text  # named by fingerprint only


def test_help_lists_every_command_under_the_name_owsd():
    result = run_owsd(["--help"])
    assert result.returncode == 0 and result.stdout.startswith("usage: owsd COMMAND")
    for command in COMMANDS:
        assert f"\n  {command} " in result.stdout
    assert "usage: owsd" in run_owsd(["fit", "--help"]).stdout
    unknown = run_owsd(["predictt"])
    assert unknown.returncode == 2 and "unknown command 'predictt'" in unknown.stderr


class _Writes:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def write(self, text: str) -> int:
        self.calls.append(text)
        return len(text)

    def flush(self) -> None:
        pass


@pytest.mark.parametrize("raised", [Interrupted(signal.SIGINT), ConfigError("a bad setting")])
def test_the_last_line_is_written_in_one_piece_so_the_lines_of_ranks_do_not_interleave(monkeypatch, raised):
    """Before: `print` wrote the line and its newline apart; two ranks of one launch stopped at once printed
    'owsd: stopped by SIGINTowsd: stopped by SIGINT' (CI, test_distributed_stops)."""

    def stop(args):
        raise raised

    monkeypatch.setattr(importlib.import_module("owsd.commands.key"), "main", stop)
    stderr = _Writes()
    monkeypatch.setattr(sys, "stderr", stderr)
    with pytest.raises(SystemExit):
        main(["keygen", "unused.key"])
    (line,) = stderr.calls
    assert line.startswith("owsd: ") and line.endswith("\n") and line.count("\n") == 1


def test_piped_fit_prints_a_line_per_stage_and_the_table_without_progress_bars(workdir):
    result = run_owsd(tiny_args(workdir))
    assert result.returncode == 0, result.stderr
    assert "\r" not in result.stderr and "it/s" not in result.stderr and "Traceback" not in result.stderr
    assert "images to precompute" in result.stderr and "precomputed 20 images" in result.stderr
    assert len(result.stderr.strip().splitlines()) <= 10, result.stderr
    assert "OWSD test accuracy on 10 images" in result.stdout


def test_keygen_writes_owner_only_file_and_refuses_to_overwrite(tmp_path):
    path = tmp_path / "org.key"
    first = run_owsd(["keygen", str(path)])
    assert first.returncode == 0 and load_key(path).fingerprint in first.stdout
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    before = path.read_bytes()
    again = run_owsd(["keygen", str(path)])
    assert again.returncode == 2 and "already exists" in again.stderr
    assert path.read_bytes() == before


def bad_input_cases(workdir):
    loose = workdir / "loose.key"
    loose.write_bytes(b"k" * 32)
    loose.chmod(0o644)
    short = workdir / "short.key"
    short.write_bytes(b"k" * 8)
    short.chmod(0o600)
    corrupt = workdir / "corrupt"
    shutil.copytree(TINY_IMAGES, corrupt)
    (corrupt / "frog" / "zz_broken.png").write_bytes(b"\x89PNG truncated")
    return {
        "unknown encoder": (["--data.encoders", "[{name: resnet5O, weights: random}]"], "resnet5O"),
        "missing weights": (["--data.cloud.init_args.weights", "/nonexistent/w.pth"], "/nonexistent/w.pth"),
        "missing folder": (["--data.source.init_args.root", str(workdir / "nothere")], "nothere does not exist"),
        "loose key": (
            ["--data.scrambler.key_file", str(loose), "--data.scrambler.create_key", "false"],
            "loose.key has mode 0644",
        ),
        "short key": (["--data.scrambler.key_file", str(short)], "short.key holds 8 bytes"),
        "too many labels": (
            ["--data.split.labels.count", "11"],
            "data.split.labels.count=11 but the dataset has 8 labels",
        ),
        "too many images": (["--data.split.images_per_label", "3"], "images_per_label asks for 3"),
        "corrupt image": (["--data.source.init_args.root", str(corrupt)], "zz_broken.png"),
        "failing cloud": (["--data.cloud", "tests.helpers.NaNCloud", "--data.plaintext_baseline", "false"], "NaN"),
        "plaintext to remote": (
            ["--data.cloud", "tests.helpers.NaNCloud"],
            "plaintext_baseline needs an in-process cloud",
        ),
        "bad defence": (["--data.scrambler.defences.embedding_dropout", "1.0"], "embedding_dropout=1.0 must be < 1"),
        "no images per label": (["--data.split.images_per_label", "0"], "data.split.images_per_label=0 must be ≥ 1"),
        "no batch": (["--data.batch_size", "0"], "data.batch_size=0 must be ≥ 1"),
    }


CASES = ["unknown encoder", "missing weights", "missing folder", "loose key", "short key", "too many labels"]
CASES += ["too many images", "corrupt image", "failing cloud", "plaintext to remote", "bad defence"]
CASES += ["no images per label", "no batch"]


@pytest.mark.parametrize("case", CASES)
def test_bad_input_gives_one_clear_error_and_leaves_no_shard(workdir, case, capsys):
    overrides, message = bad_input_cases(workdir)[case]
    stderr = refusal(tiny_args(workdir, *overrides), capsys)
    assert message in stderr and "Traceback" not in stderr
    stored = [
        image_id for shard in (workdir / "cache").rglob("shard-*.pt") for image_id in torch.load(shard)["image_ids"]
    ]
    if case == "corrupt image":  # whole batches before the broken image may be kept; the broken one's is not
        assert "frog/zz_broken.png" not in stored
    else:
        assert not stored
    assert not list((workdir / "cache").rglob("*.tmp"))


CLOUD_CONFIGS = sorted((REPO / "lightning_configs" / "offline" / "clouds").glob("*.yaml"))  # `owsd train-cloud`'s
CONFIGS = sorted(set((REPO / "lightning_configs").rglob("*.yaml")) - set(CLOUD_CONFIGS))


@pytest.mark.parametrize("path", CLOUD_CONFIGS, ids=[p.name for p in CLOUD_CONFIGS])
def test_every_cloud_config_parses_for_train_cloud(path):
    config = train_cloud_parser().parse_args(["--config", str(path), "--out", "unused"])
    assert config.data.source.class_path.startswith("owsd.data.") and config.model.architecture


@pytest.mark.parametrize("path", CONFIGS, ids=[str(p.relative_to(REPO / "lightning_configs")) for p in CONFIGS])
def test_every_config_parses_and_its_cloud_builds_offline(path, monkeypatch):
    """Each shipped config is valid for `owsd run`'s parser (that of every experiment command), and its cloud
    and encoders are described without touching the network (only `open()` downloads). A fragment (no
    `data.source`) is parsed after the config it names, or after the demo's."""

    def offline(*args, **kwargs):
        raise AssertionError(f"{path.name} reached for the network")

    monkeypatch.setattr(socket.socket, "connect", offline)
    text, configs = path.read_text(), [str(path)]
    if "source" not in (yaml.safe_load(text).get("data") or {}):
        names = re.findall(r"[\w/-]+\.yaml", text) + ["demo.yaml"]
        places = [folder / name for name in names for folder in (path.parent, REPO / "lightning_configs")]
        configs.insert(0, str(next(p for p in places if p.is_file() and p != path)))
    parser = experiment_parser("owsd run", "")
    config = parser.parse_args([arg for name in configs for arg in ("--config", name)] + ["--out", "unused"])
    cloud = config.data.cloud
    module, name = cloud.class_path.rsplit(".", 1)
    settings = (cloud.init_args or Namespace()).as_dict()
    cloud_class = getattr(importlib.import_module(module), name)
    if settings.get("checkpoint"):  # a cloud `owsd train-cloud` writes under runs/: on a clean clone, not yet there
        settings["checkpoint"] = str(REPO / settings["checkpoint"])
        if not Path(settings["checkpoint"]).is_file():
            with pytest.raises(ConfigError, match="does not exist .*`owsd train-cloud` writes one"):
                cloud_class(**settings)
            return
    built = cloud_class(**settings)
    # a remote cloud is named by what its server says it serves: asked when a run starts, not here
    assert (built.location if isinstance(built, RemoteCloud) else built.cloud_id) and isinstance(
        built.trained_on, tuple
    )
    assert all(ModelSpec(**encoder.as_dict()).weights_id for encoder in config.data.encoders)
    if path.parent.name.startswith("uc"):
        assert config.experiment.protocol == path.parent.name and config.experiment.row
