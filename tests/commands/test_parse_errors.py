"""Every numeric setting carries its range: out of it, the parser refuses in one line naming the setting, the
value and the bound, before anything is created; YAML errors name the file, misspellings get a suggestion."""

import pytest

from tests.conftest import MNIST_TINY_CONFIG, REPO, TINY_CONFIG, refusal

CLOUD_CONFIG = REPO / "lightning_configs" / "offline" / "clouds" / "mnist_cnn_2000.yaml"

# (setting, a value out of its range, what the one line says): every numeric setting of the config's sections
OUT_OF_RANGE = [
    ("model.hidden_size", "0", "≥ 1"), ("model.dropout", "1.0", "< 1"), ("model.dropout", "-0.1", "≥ 0"),
    ("model.lr", "-1", "> 0"), ("model.lr_decay", "0", "> 0"), ("model.lr_decay", "1.5", "≤ 1"),
    ("model.patience", "-1", "≥ 0"),
    ("data.image_size", "0", "≥ 1"), ("data.batch_size", "0", "≥ 1"), ("data.precompute_batch_size", "0", "≥ 1"),
    ("data.num_workers", "-1", "≥ 0"), ("data.precompute_timeout", "0", "> 0"),
    ("data.scrambler.size", "0", "≥ 1"), ("data.scrambler.channels", "0", "≥ 1"),
    ("data.scrambler.key_budget", "-1", "≥ 0"), ("data.scrambler.defences.embedding_noise", "-1", "≥ 0"),
    ("data.scrambler.defences.embedding_dropout", "1.0", "< 1"), ("data.scrambler.defences.rotate_every", "0", "≥ 1"),
    ("data.split.images_per_label", "0", "≥ 1"), ("data.split.test_fraction", "0", "> 0"),
    ("data.split.test_fraction", "1", "< 1"), ("data.split.val_fraction", "1", "< 1"),
    ("data.split.train_per_label", "0", "≥ 1"), ("data.split.labels.count", "0", "≥ 1"),
    ("experiment.train_per_label", "[0]", "≥ 1"), ("experiment.ensemble_sizes", "[0]", "≥ 1"),
    ("experiment.recipes", "[{name: big, hidden_size: 0}]", "≥ 1"),
    ("attack.images_per_label", "0", "≥ 1"), ("attack.pixel_size", "1", "≥ 2"),
    ("attack.linkability_images", "1", "≥ 2"), ("attack.margin", "0", "> 0"), ("attack.margin", "1", "< 1"),
    ("attack.resources.pairs", "[0, 30]", "≥ 1"), ("attack.resources.held_out", "1", "≥ 2"),
    ("attack.resources.public", "1", "≥ 2"), ("attack.reconstruction.epochs", "0", "≥ 1"),
    ("attack.reconstruction.width", "0", "≥ 1"), ("attack.key_recovery.epochs", "0", "≥ 1"),
    ("attack.key_recovery.lr", "0", "> 0"), ("attack.key_recovery.invert_images", "0", "≥ 1"),
    ("attack.key_recovery.invert_steps", "0", "≥ 1"), ("attack.key_recovery.channels", "[4]", "≥ 8"),
    ("attack.defences", "[{embedding_noise: -1}]", "≥ 0"),
    ("analysis.grid_images", "0", "≥ 1"), ("analysis.pca_images", "0", "≥ 1"), ("analysis.relu_images", "0", "≥ 1"),
    ("iin_threads", "0", "≥ 1"),
]  # fmt: skip


@pytest.mark.parametrize("setting, value, bound", OUT_OF_RANGE, ids=[f"{s}={v}" for s, v, _ in OUT_OF_RANGE])
def test_a_setting_out_of_its_range_is_one_line_before_anything_is_written(workdir, capsys, setting, value, bound):
    """Before: `--model.hidden_size 0` ended in an IndexError from batch norm, `--model.lr -1` in torch's
    ValueError, and most others were checked (if at all) only once the pipeline was built."""
    stderr = refusal(["run", "--config", str(MNIST_TINY_CONFIG), f"--{setting}={value}", "--out", "out"], capsys)
    first = stderr.splitlines()[0]
    assert first.startswith("owsd run: error: ") and f"must be {bound}" in first, stderr
    name = setting.split(".")[-1] if setting.startswith(("attack.defences", "experiment.recipes")) else setting
    assert name in first and "Traceback" not in stderr and len(stderr.splitlines()) == 2
    assert list(workdir.iterdir()) == []


COMMANDS_OUT_OF_RANGE = [
    (["fit", "--config", str(TINY_CONFIG), "--model.hidden_size", "0"], "owsd fit: error: model.hidden_size=0 must be ≥ 1"),
    (["train-cloud", "--config", str(CLOUD_CONFIG), "--model.width", "0", "--out", "o"], "model.width=0 must be ≥ 1"),
    (["train-cloud", "--config", str(CLOUD_CONFIG), "--model.lr", "0", "--out", "o"], "model.lr=0 must be > 0"),
    (["train-cloud", "--config", str(CLOUD_CONFIG), "--data.cloud_split.images_per_label", "1", "--out", "o"],
     "data.cloud_split.images_per_label=1 must be ≥ 2"),
    (["train-cloud", "--config", str(CLOUD_CONFIG), "--data.batch_size", "0", "--out", "o"], "data.batch_size=0 must be ≥ 1"),
    (["serve-cloud", "--model", "test_resnet", "--port", "70000"], "argument --port: 70000 must be in [0, 65535]"),
    (["serve-cloud", "--model", "test_resnet", "--max_batch", "0"], "argument --max_batch: 0 must be ≥ 1"),
    (["sweep", "sweeps/iin_size.yaml", "--trials", "0", "--out", "o"], "argument --trials: 0 must be ≥ 1"),
]  # fmt: skip


@pytest.mark.parametrize(
    "args, line", COMMANDS_OUT_OF_RANGE, ids=[" ".join(a[:1] + a[3:4]) for a, _ in COMMANDS_OUT_OF_RANGE]
)
def test_each_commands_own_numbers_carry_their_range(workdir, capsys, args, line):
    stderr = refusal(args, capsys)
    assert line in stderr.splitlines()[-2 if args[0] in ("fit", "train-cloud") else -1] and "Traceback" not in stderr
    assert list(workdir.iterdir()) == []


@pytest.mark.parametrize("setting", ["max_epochs", "max_steps", "limit_train_batches"])
def test_a_trainer_that_would_train_nothing_is_refused(workdir, capsys, setting):
    """Before: `--trainer.max_epochs 0` exited 0 and printed a results table for an IIN that never trained."""
    stderr = refusal(["fit", "--config", str(TINY_CONFIG), f"--trainer.{setting}", "0"], capsys)
    assert f"trainer.{setting}=0 trains nothing" in stderr and list(workdir.iterdir()) == []


def test_a_yaml_error_names_the_file_line_and_column(workdir, capsys):
    """Before: the error named `"<unicode string>"` and spread over four lines."""
    broken = workdir / "broken.yaml"
    broken.write_text("data:\n  batch_size: [1,\n  cache_dir: x\n")
    stderr = refusal(["run", "--config", str(broken), "--out", "out"], capsys)
    first = stderr.splitlines()[0]
    assert f"{broken}, line 4, column 1:" in first and "(YAML syntax)" in first and "<unicode string>" not in stderr
    assert sorted(p.name for p in workdir.iterdir()) == ["broken.yaml"]


@pytest.mark.parametrize("where", ["yaml", "command line"])
@pytest.mark.parametrize("command", ["fit", "run"])
def test_a_misspelled_setting_gets_the_name_meant(workdir, capsys, where, command):
    """Before: `data.scrambler.keyfile` was refused with no hint of `data.scrambler.key_file`."""
    args = [command, "--config", str(TINY_CONFIG)]
    if where == "yaml":
        typo = workdir / "typo.yaml"
        typo.write_text("data:\n  scrambler:\n    keyfile: my.key\n")
        args += ["--config", str(typo)]
    else:
        args += ["--data.scrambler.keyfile", "my.key"]
    stderr = refusal([*args, *(["--out", "out"] if command == "run" else [])], capsys)
    assert (
        f"owsd {command}: error: unknown setting data.scrambler.keyfile; did you mean data.scrambler.key_file?"
        in stderr
    )
    assert not (workdir / "out").exists() and not (workdir / ".owsd").exists()
