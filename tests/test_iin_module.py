from types import SimpleNamespace

import pytest
import torch
from lightning.pytorch import LightningDataModule, Trainer

from owsd.data.cache import CachedRows, RowTable
from owsd.datamodule import CachedPairs
from owsd.errors import ConfigError
from owsd.iin_module import IINModule
from owsd.training import named, results_table

CLASSES = 6


class Pairs(LightningDataModule):
    """What IINModule reads from OWSDDataModule: datasets, feature widths, classes."""

    def __init__(self, cloud_classes_known: bool, subset_of_cloud_labels: bool = False) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(0)
        labels = torch.arange(120) % CLASSES
        one_hot = torch.nn.functional.one_hot
        plaintext = 0.9 * one_hot(labels, CLASSES) + 0.1 / CLASSES
        # A quarter wrong at top-1, with the true label second.
        plaintext[:30] = 0.6 * one_hot((labels[:30] + 1) % CLASSES, CLASSES) + 0.3 * one_hot(labels[:30], CLASSES)
        plaintext[:30] += 0.1 / CLASSES
        fields = {
            "embedding": torch.randn(120, 8, generator=generator) + labels[:, None],
            "cloud": torch.rand(120, CLASSES, generator=generator).softmax(1),
            "plaintext_cloud": plaintext,
        }
        rows = CachedRows([str(i) for i in range(120)], torch.arange(120), RowTable([], labels, fields))
        self.pairs = CachedPairs(rows, {label: label for label in range(CLASSES)})
        self.feature_dims = {"embedding": 8, "cloud": CLASSES, "plaintext_cloud": CLASSES}
        self.num_classes, self.cloud_classes_known = CLASSES, cloud_classes_known
        known = cloud_classes_known or subset_of_cloud_labels
        self.cloud_labels = list(range(CLASSES)) if known else None
        self.pipeline = SimpleNamespace(contract={"key_fingerprint": "test"})
        self.class_names = [str(label) for label in range(CLASSES)]

    def train_dataloader(self):
        return torch.utils.data.DataLoader(self.pairs, batch_size=32, shuffle=True)

    val_dataloader = test_dataloader = train_dataloader


def fit_and_test(iin_input: str, cloud_classes_known: bool, tmp_path, **pairs) -> dict[str, float]:
    trainer = Trainer(max_epochs=2, logger=False, enable_progress_bar=False, default_root_dir=tmp_path)
    model = IINModule(iin_input=iin_input, hidden_size=16)
    trainer.fit(model, datamodule=Pairs(cloud_classes_known, **pairs))
    assert model.hparams.input_dim == {"embedding+cloud": 8 + CLASSES, "cloud": CLASSES}[iin_input]
    return trainer.test(model, datamodule=trainer.datamodule, verbose=False)[0]


def test_cloud_class_agreement_and_plaintext_bound_when_labels_are_the_clouds(tmp_path):
    metrics = fit_and_test("embedding+cloud", cloud_classes_known=True, tmp_path=tmp_path)
    assert metrics["test/cloud_plaintext/top1"] == 0.75  # the cloud's own accuracy on plaintext
    assert metrics["test/cloud_plaintext/top5"] == 1.0
    assert 0 <= metrics["test/embedding+cloud/cloud_class_top1"] <= 1
    by_method = {name: named(metrics, name) for name in ("embedding+cloud", "cloud_plaintext")}
    table = results_table(by_method, 120)
    assert "agreement with the cloud on plaintext" in table and "cloud on plaintext images (upper bound)" in table
    assert "   0.750   1.000" in table


def test_a_subset_of_the_clouds_labels_has_the_plaintext_clouds_accuracy_but_no_agreement(tmp_path):
    metrics = fit_and_test("embedding+cloud", cloud_classes_known=False, tmp_path=tmp_path, subset_of_cloud_labels=True)
    assert metrics["test/cloud_plaintext/top1"] == 0.75
    assert not any("cloud_class" in name for name in metrics)


def test_the_iin_validates_once_per_epoch_whatever_the_trainer_says(tmp_path):
    trainer = Trainer(
        max_epochs=1, logger=False, enable_progress_bar=False, val_check_interval=2, default_root_dir=tmp_path
    )
    with pytest.raises(ConfigError, match="trainer.val_check_interval=2"):
        trainer.fit(IINModule(hidden_size=16), datamodule=Pairs(False))


def test_no_cloud_class_metrics_for_other_labels(tmp_path):
    metrics = fit_and_test("cloud", cloud_classes_known=False, tmp_path=tmp_path)
    assert set(metrics) == {"test/cloud/loss", "test/cloud/top1", "test/cloud/top5"}


def test_checkpoint_restores_without_data(tmp_path):
    trainer = Trainer(max_epochs=1, logger=False, enable_progress_bar=False, default_root_dir=tmp_path)
    model = IINModule(hidden_size=16)
    trainer.fit(model, datamodule=Pairs(False))
    restored = IINModule.load_from_checkpoint(trainer.checkpoint_callback.best_model_path)
    batch = {"embedding": torch.randn(3, 8), "cloud": torch.rand(3, CLASSES)}
    model.eval(), restored.eval()
    assert torch.equal(model(batch), restored(batch))
