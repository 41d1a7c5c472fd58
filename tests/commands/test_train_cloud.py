"""`owsd train-cloud`: a checkpoint HubCloud loads, that knows its images; private images it saw are refused."""

import json
import stat
from pathlib import Path

import pytest
import torch

from owsd.cli import main
from owsd.components.hub_cloud import HubCloud
from owsd.components.scrambler import ScramblerSettings
from owsd.components.timm_models import ModelSpec
from owsd.data.digits import MnistSource
from owsd.data.selection import CloudSplit, LabelSubset, SplitSettings
from owsd.datamodule import OWSDDataModule
from owsd.errors import ConfigError
from tests.conftest import REPO, refusal, run_owsd

CONFIG = REPO / "lightning_configs" / "offline" / "clouds" / "mnist_cnn_2000.yaml"
TINY = ["--data.cloud_split.images_per_label", "6", "--model.width", "4", "--trainer.max_epochs", "2"]


def train_cloud_args(out: Path, *overrides: str) -> list[str]:
    return ["train-cloud", "--config", str(CONFIG), *TINY, *overrides, "--out", str(out)]


def train_cloud(out: Path, *overrides: str):
    return run_owsd(train_cloud_args(out, *overrides))


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cloud") / "cnn"
    result = train_cloud(out)
    assert result.returncode == 0, result.stderr
    assert "validation top-1" in result.stderr and "Traceback" not in result.stderr
    return out


def test_the_checkpoint_round_trips_into_hub_cloud_with_its_classes_and_images(trained):
    checkpoint = trained / "cloud.ckpt"
    assert stat.S_IMODE(checkpoint.stat().st_mode) == 0o600  # it names images of the cloud's data
    cloud = HubCloud(checkpoint=str(checkpoint))
    assert cloud.classes == tuple(str(digit) for digit in range(10)) and cloud.trained_on == ()
    source = MnistSource()
    drawn = CloudSplit(images_per_label=6, seed=0).draw([label for _, label in source.items], source.classes)
    assert cloud.trained_on_images == {"mnist:train": frozenset(source.items[p][0] for p in drawn.all)}
    assert len(drawn.all) == 60 and len(drawn.val) == 10
    # The weights written are the best epoch's of Lightning's own checkpoint.
    (best,) = (trained / "lightning").rglob("*.ckpt")
    lightning = torch.load(best, weights_only=True)["state_dict"]
    written = torch.load(checkpoint, weights_only=True)["state_dict"]
    assert written and all(torch.equal(tensor, lightning[f"classifier.{name}"]) for name, tensor in written.items())
    client = cloud.open()
    answers = client.classify_plaintext(torch.stack([source.load(p, 256) for p in drawn.val]))
    assert answers.shape == (10, 10)
    truth = torch.tensor([source.items[p][1] for p in drawn.val])
    summary = json.loads((trained / "cloud.json").read_text())
    assert summary["val_top1"] == pytest.approx(float((answers.argmax(1) == truth).float().mean()))
    assert summary["images"] == {"train": 50, "val": 10} and summary["classes"] == list(cloud.classes)


def data(cloud: HubCloud, tmp_path: Path, **split) -> OWSDDataModule:
    encoders = [ModelSpec("test_efficientnet", "random")]
    source = MnistSource(labels_are_cloud_classes=True)
    settings = ScramblerSettings(tmp_path / "k.key")
    return OWSDDataModule(source, encoders, cloud, settings, SplitSettings(**split), cache_dir=tmp_path)


def test_private_images_the_cloud_was_trained_on_are_refused_and_the_reserved_split_leaves_them_out(trained, tmp_path):
    cloud = HubCloud(checkpoint=str(trained / "cloud.ckpt"))
    with pytest.raises(ConfigError, match=r"takes \d+ images that data.cloud was trained on .*reserved_for_cloud"):
        data(cloud, tmp_path).split  # noqa: B018
    module = data(cloud, tmp_path, reserved_for_cloud=CloudSplit(images_per_label=6, seed=0))
    private = set(module.pipeline.image_ids(module.split.all))
    assert len(private) == 5000 - 60 and not private & cloud.trained_on_images["mnist:train"]
    other_order = data(cloud, tmp_path, reserved_for_cloud=CloudSplit(images_per_label=6, seed=1))
    with pytest.raises(ConfigError, match="trained on"):  # another cloud_split reserves other images
        other_order.split  # noqa: B018


def test_a_cloud_of_fewer_digits_than_the_private_labels_is_refused(tmp_path):
    out = tmp_path / "two"
    main(train_cloud_args(out, "--data.cloud_split.labels.names", '["0", "1"]'))  # in this process: no 10 s start
    with pytest.raises(ConfigError, match=r"labels_are_cloud_classes.*answers 2 classes \['0', '1'\]"):
        data(HubCloud(checkpoint=str(out / "cloud.ckpt")), tmp_path)


def test_nested_cloud_splits_take_the_first_images_of_one_order():
    labels = [i % 10 for i in range(500)]
    small, large = (CloudSplit(images_per_label=n, seed=0).draw(labels, [str(d) for d in range(10)]) for n in (5, 20))
    assert set(small.all) < set(large.all)
    assert CloudSplit(labels=LabelSubset(count=3)).draw(labels, [str(d) for d in range(10)]).labels.__len__() == 3


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["--data.cloud_split.images_per_label", "900"], "cloud_split.images_per_label asks 900"),
        (["--data.cloud_split.val_fraction", "1.0"], "cloud_split.val_fraction=1.0"),
        (["--model.architecture", "resnet_nonexistent"], "unknown timm model name 'resnet_nonexistent'"),
        (["--data.source", "owsd.data.sources.ImageFolderSource", "--data.source.root", "/nonexistent"],
         "image folder /nonexistent does not exist"),
    ],
)  # fmt: skip
def test_bad_settings_are_one_error_and_write_nothing(workdir, capsys, overrides, message):
    stderr = refusal(train_cloud_args(workdir / "out", *overrides), capsys)
    assert message in stderr and "Traceback" not in stderr
    assert not list(workdir.iterdir())


def test_a_source_without_labelled_images_is_one_error_and_writes_nothing(workdir, capsys):
    (workdir / "images" / "cat").mkdir(parents=True)  # a class folder, but no image in it
    folder = ["--data.source", "owsd.data.sources.ImageFolderSource", "--data.source.root", str(workdir / "images")]
    stderr = refusal(train_cloud_args(workdir / "out", *folder), capsys)
    assert "holds no images" in stderr and "Traceback" not in stderr
    assert not (workdir / "out").exists() and not (workdir / "out.partial").exists()


@pytest.mark.parametrize("command", ["run", "analyze", "attack"])
def test_a_split_taking_images_the_cloud_saw_is_one_error_before_anything_is_written(trained, workdir, capsys, command):
    in_domain = REPO / "lightning_configs" / "offline" / "mnist_same_labels.yaml"
    stderr = refusal([command, "--config", str(in_domain), "--data.cloud.init_args.checkpoint",
                      str(trained / "cloud.ckpt"), "--data.split.reserved_for_cloud", "null", "--out", "out"], capsys)  # fmt: skip
    assert "data.split takes 60 images that data.cloud was trained on" in stderr and "Traceback" not in stderr
    assert "reserved_for_cloud" in stderr and not list(workdir.iterdir())  # no key, cache or output folder


def test_the_same_training_again_is_the_same_cloud_and_finds_the_same_cache(trained, tmp_path):
    again = tmp_path / "again"
    assert train_cloud(again).returncode == 0
    first, second = (HubCloud(checkpoint=str(folder / "cloud.ckpt")) for folder in (trained, again))
    assert (trained / "cloud.ckpt").read_bytes() == (again / "cloud.ckpt").read_bytes()
    assert first.cloud_id == second.cloud_id
