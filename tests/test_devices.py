"""Device-correct by construction: precompute and predict run whole on PyTorch's `meta` device.

A `meta` tensor has a shape and no data, and an op mixing it with a CPU tensor fails, so a module left on the
CPU or a tensor allocated there (the bug a CUDA user would meet at the first batch) shows up here without a
GPU. The dispatch mode below also fails on any CPU tensor an op creates on the way, except the host-side keyed
draws: SHAKE-256 runs on the host, so the generator's weights, the defences' noise and the rotation order are
drawn there once and copied to the device.
"""

import traceback
from pathlib import Path

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from owsd.components.cloud import LocalCloud
from owsd.components.scrambler import Defences, ScramblerSettings
from owsd.components.timm_models import ModelSpec
from owsd.data.sources import ImageFolderSource
from owsd.iin_module import IINModule
from owsd.pipeline import Pipeline
from owsd.precompute_batch import ScrambleAndAsk
from owsd.prediction import Predictor
from tests.conftest import TINY_IMAGES

HOST_KEYED_DRAWS = {
    ("generator.py", "_expand_weights"),
    ("scrambler.py", "_keyed_perturbation"),
    ("scrambler.py", "_keyed_source_order"),
}
META = torch.device("meta")


class NoHostTensors(TorchDispatchMode):
    """Records every op whose result is a CPU tensor, outside the host-side keyed draws."""

    def __init__(self) -> None:
        super().__init__()
        self.offences: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        result = func(*args, **(kwargs or {}))
        if any(isinstance(t, torch.Tensor) and t.device.type == "cpu" for t in tree_flatten(result)[0]):
            stack = traceback.extract_stack()
            if not {(Path(frame.filename).name, frame.name) for frame in stack} & HOST_KEYED_DRAWS:
                owsd_frames = [f"{Path(f.filename).name}:{f.lineno} {f.name}" for f in stack if "/owsd/" in f.filename]
                self.offences.append(f"{func} at {' < '.join(reversed(owsd_frames[-3:]))}")
        return result


@pytest.fixture
def pipeline(tmp_path) -> Pipeline:
    defences = Defences(embedding_noise=0.5, embedding_dropout=0.1, rotate_every=7)  # every keyed draw runs
    scrambler = ScramblerSettings(tmp_path / "k.key", create_key=True, size=32, channels=16, defences=defences)
    return Pipeline(
        ImageFolderSource(TINY_IMAGES),
        [ModelSpec("test_efficientnet", "random"), ModelSpec("test_resnet", "random")],
        LocalCloud("test_resnet", "random"),
        scrambler,
        plaintext_baseline=True,
        image_size=64,
        cache_dir=tmp_path / "cache",
    )


def meta_batch(pipeline: Pipeline, positions: list[int], known: list[torch.Tensor | None]) -> dict:
    """A precompute batch as Lightning hands it to the module on the device: images and the embeddings known
    from the cache there, ids on the host."""
    return {
        "image": torch.empty(len(positions), 3, 64, 64, dtype=torch.uint8, device=META),
        "image_id": pipeline.image_ids(positions),
        "position": positions,
        "known_embeddings": known,
    }


@pytest.mark.parametrize("first_encoder_cached", [False, True])
def test_precompute_runs_on_the_device_of_its_input(pipeline, first_encoder_cached):
    cloud = pipeline.cloud.open()  # the key ledger hashes the bytes sent on the host; tested on the CPU
    encoders = pipeline.build_encoders()
    known: list[torch.Tensor | None] = [None, None]
    if first_encoder_cached:  # its embedding comes from the cache, moved to the device with the batch
        known[0] = torch.empty(4, 256, device=META)
        encoders[0].forward = lambda images: (_ for _ in ()).throw(AssertionError("a cached encoder ran"))
    module = ScrambleAndAsk(encoders, pipeline.scramblers(), cloud, True).to(META)
    guard = NoHostTensors()
    with guard, torch.inference_mode():
        rows = module(meta_batch(pipeline, [0, 3, 9, 19], known))
    assert guard.offences == []
    widths = {"embedding": 256 + 96, "cloud": 2 * 1000, "plaintext_cloud": 1000}
    assert {name: (t.device, tuple(t.shape)) for name, t in rows.items()} == {
        name: (META, (4, width)) for name, width in widths.items()
    }
    generators = [g for scrambler in module.scramblers for g in scrambler.generators.values()]
    assert generators and all(p.device == META for g in generators for p in g.parameters())


def test_predict_runs_on_the_device_it_is_given(pipeline, monkeypatch):
    pipeline = pipeline.with_defences(Defences(embedding_noise=0.5))  # predict does not rotate keys
    monkeypatch.setattr(pipeline, "open_cloud", lambda command, image_ids: pipeline.cloud.open())  # no ledger
    model = IINModule(input_dim=256 + 96 + 2000, num_classes=10, hidden_size=8)
    predictor = Predictor(pipeline, model, ["new/a", "new/b"], device=META)
    images = torch.empty(2, 3, 64, 64, dtype=torch.uint8)  # decoded on the host, as predict reads files
    guard = NoHostTensors()
    with guard:
        probabilities = predictor.on_device(images, ["new/a", "new/b"])
    assert guard.offences == []
    assert probabilities.device == META and probabilities.shape == (2, 10)


def test_the_guard_catches_a_tensor_made_on_the_host():
    guard = NoHostTensors()
    with guard:
        torch.zeros(2, device=META) + torch.ones(1, device=META)
        torch.empty(3)  # what `Scrambler.scramble` once did for its output pixels
    assert len(guard.offences) == 1 and "aten.empty" in guard.offences[0]
