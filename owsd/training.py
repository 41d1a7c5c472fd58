"""The training recipe every command shares: fit an IIN, test its best checkpoint, train and test the
comparisons the same way, add the local baseline, and print one table.

`owsd fit`, `owsd run` and the defence costs of `owsd attack` all call `measure`, so a number in one table
means what the same number means in another.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from lightning.pytorch import LightningDataModule, Trainer, seed_everything

from owsd.baselines import linear_probe_accuracy
from owsd.components.iin import IINInput
from owsd.datamodule import OWSDDataModule
from owsd.iin_module import PLAINTEXT_CLOUD, IINModule
from owsd.threads import SMALL_MODEL_THREADS, torch_threads

log = logging.getLogger(__name__)

LINEAR_PROBE, ENCODER_HEAD = "linear_probe", "encoder_head"
OWSD = "embedding+cloud"
LOCAL_METHODS = ("embedding", LINEAR_PROBE, ENCODER_HEAD)  # what a user gets without sending anything
METHODS = {  # row labels of every results table
    OWSD: "IIN embedding+cloud (OWSD)",
    "embedding": "IIN embedding (ablation)",
    "cloud": "IIN cloud (ablation)",
    "embedding+plaintext_cloud": "IIN embedding+plaintext_cloud (upper bound)",
    LINEAR_PROBE: "linear probe on the embedding (sends nothing)",
    ENCODER_HEAD: "encoder's own classifier head (sends nothing)",
    PLAINTEXT_CLOUD: "cloud on plaintext images (upper bound)",
}

Results = dict[str, dict[str, float]]  # method → its test metrics (`top1`, `top5`, ...)


def variant(model: IINModule, iin_input: IINInput, **overrides: Any) -> IINModule:
    """A fresh, untrained IIN with `model`'s settings but another input (sized again from the data)."""
    settings = {k: v for k, v in model.hparams.items() if not k.startswith("_")}  # drop CLI bookkeeping
    return IINModule(**{**settings, **overrides, "iin_input": iin_input, "input_dim": None, "num_classes": None})


def evaluate_best(trainer: Trainer, model: IINModule, datamodule: LightningDataModule | None = None) -> Results:
    """Test metrics of the best checkpoint of the fit `trainer` just ran (the last weights without one), by method:
    the IIN's own, and the cloud's on plaintext when the data has it."""
    ckpt = "best" if trainer.checkpoint_callback and trainer.checkpoint_callback.best_model_path else None
    metrics = trainer.test(model, datamodule=datamodule or trainer.datamodule, ckpt_path=ckpt, verbose=False)[0]
    log.info(
        "IIN %s: trained %d epochs, test top-1 %.3f",
        model.name,
        trainer.current_epoch,
        metrics[f"test/{model.name}/top1"],
    )
    results = {model.name: {**named(metrics, model.name), "epochs": trainer.current_epoch}}
    if f"test/{PLAINTEXT_CLOUD}/top1" in metrics:
        results[PLAINTEXT_CLOUD] = named(metrics, PLAINTEXT_CLOUD)
    return results


def fit_and_test(
    trainer: Trainer, model: IINModule, data: LightningDataModule, threads: int = SMALL_MODEL_THREADS
) -> Results:
    """Fit on `threads` torch threads (a small dense net gains nothing from more), then `evaluate_best`."""
    started = time.perf_counter()
    with torch_threads(threads):
        trainer.fit(model, datamodule=data)
        results = evaluate_best(trainer, model, data)
    results[model.name]["seconds"] = time.perf_counter() - started
    return results


def measure(
    data: OWSDDataModule,
    model: IINModule,
    make_trainer: Callable[[], Trainer],
    inputs: list[IINInput],
    seed: int | None,
    linear_probe: bool = True,
    threads: int = SMALL_MODEL_THREADS,
) -> Results:
    """A fresh IIN per input, each from the same seed and on a fresh Trainer, then the linear probe."""
    results: Results = {}
    for iin_input in inputs:
        if seed is not None:
            seed_everything(seed, verbose=False)
        results.update(fit_and_test(make_trainer(), variant(model, iin_input), data, threads))
    if linear_probe:
        results[LINEAR_PROBE] = linear_probe_metrics(data, seed or 0)
    return results


def linear_probe_metrics(data: OWSDDataModule, seed: int) -> dict[str, float]:
    """The linear-probe baseline on the IIN's own training images, scored on its test images."""
    data.setup()
    train, test = data.pairs["train"], data.pairs["test"]
    return linear_probe_accuracy(
        train.column("embedding"), train.labels, test.column("embedding"), test.labels, int(seed)
    )


def named(metrics: dict[str, float], name: str) -> dict[str, float]:
    """`test/NAME/top1` → `top1` (and `cloud_class_top1` etc.)."""
    prefix = f"test/{name}/"
    return {key[len(prefix) :]: float(value) for key, value in metrics.items() if key.startswith(prefix)}


def results_table(results: Results, test_images: int) -> str:
    """Test top-1/top-5 per method, with the cloud-agreement rows when measured and the plaintext cloud last."""

    def row(label: str, metrics: dict[str, float], prefix: str = "") -> str:
        return f"{label:48}{metrics[f'{prefix}top1']:8.3f}{metrics[f'{prefix}top5']:8.3f}"

    lines = [f"{f'OWSD test accuracy on {test_images} images':48}{'top-1':>8}{'top-5':>8}"]
    for name, metrics in results.items():
        if name == PLAINTEXT_CLOUD:
            continue
        lines.append(row(METHODS[name], metrics))
        if "cloud_class_top1" in metrics:
            lines.append(row("  agreement with the cloud on plaintext", metrics, "cloud_class_"))
    if PLAINTEXT_CLOUD in results:
        lines.append(row(METHODS[PLAINTEXT_CLOUD], results[PLAINTEXT_CLOUD]))
    return "\n".join(lines)
