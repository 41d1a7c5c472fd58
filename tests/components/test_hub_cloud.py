"""HubCloud offline: a local torch.hub repo and local checkpoints stand in for GitHub and its release weights."""

import io
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import torch
from torch import nn

from owsd.components.cloud import InProcessCloud
from owsd.components.generator import ScramblingGenerator
from owsd.components.hub_cloud import CIFAR_MODELS, CIFAR_NORMALISATION, HubCloud
from owsd.components.key import Key
from owsd.components.preprocess import Preprocess
from owsd.errors import ConfigError, DataError

MEAN, STD = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
HUBCONF = '''
import torch
from torch import nn

dependencies = ["torch"]


def tiny_cifar(pretrained=False, num_classes=10):
    """A 32x32 classifier; `pretrained` loads the weights saved next to this file."""
    torch.manual_seed(1)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, stride=2), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 15 * 15, num_classes))
    if pretrained:
        model.load_state_dict(torch.load(__file__.replace("hubconf.py", "weights.pt")))
    return model
'''


def tiny_cifar(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 4, 3, stride=2), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 15 * 15, 10))


@pytest.fixture
def hub_repo(tmp_path: Path) -> Path:
    """A local hub repo whose `tiny_cifar(pretrained=True)` carries weights of seed 7."""
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "hubconf.py").write_text(HUBCONF)
    torch.save(tiny_cifar(7).state_dict(), repo / "weights.pt")
    return repo


def pixels(count: int = 3, size: int = 64) -> torch.Tensor:
    return torch.randint(0, 256, (count, 3, size, size), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)


def expected(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """What the cloud must answer: the model on its own 32×32, normalised input."""
    with torch.no_grad():
        return model.eval()(Preprocess(32, 1.0, MEAN, STD)(images)).softmax(-1)


def test_a_local_hub_model_answers_scrambled_images_with_its_pretrained_weights(hub_repo):
    cloud = HubCloud(str(hub_repo), "tiny_cifar", source="local", mean=MEAN, std=STD, trained_on=["cifar10:train"])
    assert isinstance(cloud, InProcessCloud) and cloud.trained_on == ("cifar10:train",)
    client = cloud.open()
    images = pixels()
    assert torch.allclose(client.classify_plaintext(images), expected(tiny_cifar(7), images), atol=1e-6)
    scrambled = ScramblingGenerator(Key.generate(), 8, image_size=64, base_channels=16).scramble(torch.rand(2, 8))
    assert client(scrambled).shape == (2, 10)


def test_cloud_id_is_stable_and_names_weights_and_preprocessing(hub_repo):
    def cloud_id(**changes) -> str:
        settings = {"repo": str(hub_repo), "model": "tiny_cifar", "source": "local", "mean": MEAN, "std": STD}
        return HubCloud(**{**settings, **changes}).cloud_id

    assert cloud_id() == cloud_id() and cloud_id().startswith("hub-tiny_cifar-hubconf-sha256-")
    assert cloud_id(std=(0.2, 0.2, 0.2)) != cloud_id() != cloud_id(input_size=64)
    hub = HubCloud(model="cifar100_vgg16_bn")  # the default repo is pinned: named without the network
    assert hub.cloud_id.startswith(f"hub-{CIFAR_MODELS}-cifar100_vgg16_bn-pretrained-pre")


def test_an_unpinned_github_ref_is_resolved_to_its_commit_once_and_recorded(monkeypatch):
    asked = []

    class Answer(io.BytesIO):
        def __enter__(self):
            return self

        def __exit__(self, *exception):
            return None

    def urlopen(request, timeout):
        asked.append(request.full_url)
        return Answer(b"0123456789abcdef0123456789abcdef01234567")

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    hub = HubCloud(repo="owner/models:main", model="cifar10_vgg16_bn")
    assert hub.cloud_id.startswith("hub-owner/models:0123456789abcdef0123456789abcdef01234567-cifar10_vgg16_bn")
    assert hub.cloud_id == hub.cloud_id and asked == ["https://api.github.com/repos/owner/models/commits/main"]
    loaded = []
    monkeypatch.setattr(torch.hub, "load", lambda repo, *a, **k: loaded.append(repo) or torch.nn.Identity())
    hub.build()
    assert loaded == ["owner/models:0123456789abcdef0123456789abcdef01234567"], "the commit named is the one loaded"

    def offline(request, timeout):
        raise urllib.error.URLError("no internet")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(DataError, match=r"cannot resolve torch.hub repo owner/models .*pin one: owner/models:<commit>"):
        HubCloud(repo="owner/models", model="cifar10_vgg16_bn").cloud_id


def test_the_published_cifar_models_default_to_their_normalisation_and_training_split(monkeypatch):
    monkeypatch.setattr(torch.hub, "load", lambda *a, **k: pytest.fail("a HubCloud must not load until opened"))
    for dataset in ("cifar10", "cifar100"):
        cloud = HubCloud(model=f"{dataset}_vgg16_bn")
        assert (cloud.mean, cloud.std) == CIFAR_NORMALISATION[dataset] and cloud.input_size == 32
        assert cloud.trained_on == (f"{dataset}:train",)
    assert HubCloud(model="cifar10_vgg16_bn", trained_on=[]).trained_on == ()


def test_torchscript_and_state_dict_checkpoints(hub_repo, tmp_path):
    model, images = tiny_cifar(3), pixels()
    scripted = tmp_path / "model.torchscript.pt"
    torch.jit.script(model).save(str(scripted))
    cloud = HubCloud(repo=None, checkpoint=str(scripted), mean=MEAN, std=STD)
    assert torch.allclose(cloud.open().classify_plaintext(images), expected(model, images), atol=1e-6)
    assert cloud.cloud_id.startswith("hub-torchscript-sha256-")
    state = tmp_path / "state.pt"
    torch.save(model.state_dict(), state)
    cloud = HubCloud(str(hub_repo), "tiny_cifar", str(state), source="local", mean=MEAN, std=STD)
    assert torch.allclose(cloud.open().classify_plaintext(images), expected(model, images), atol=1e-6)


def test_bad_settings_name_the_culprit(hub_repo, tmp_path):
    local = {"source": "local", "mean": MEAN, "std": STD}
    with pytest.raises(ConfigError, match="nothere.pt for HubCloud does not exist"):
        HubCloud(checkpoint=str(tmp_path / "nothere.pt"), **local)
    with pytest.raises(ConfigError, match="norepo .*is not a folder holding hubconf.py"):
        HubCloud(str(tmp_path / "norepo"), "tiny_cifar", **local)
    with pytest.raises(ConfigError, match="'tiny_cifra' is not an entry point of repo .*repo"):
        HubCloud(str(hub_repo), "tiny_cifra", **local).open()
    with pytest.raises(ConfigError, match="model my_net: give its input `mean` and `std`"):
        HubCloud(str(hub_repo), "my_net", source="local")
    with pytest.raises(ConfigError, match="needs `repo` and `model`, or a `checkpoint`"):
        HubCloud(repo=None, model=None)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(ConfigError, match="garbage.pt is neither TorchScript nor a state_dict"):
        HubCloud(str(hub_repo), "tiny_cifar", str(garbage), **local).open()
    other = tmp_path / "other.pt"
    torch.save({"weight": torch.zeros(2)}, other)
    with pytest.raises(ConfigError, match="other.pt does not fit 'tiny_cifar'"):
        HubCloud(str(hub_repo), "tiny_cifar", str(other), **local).open()
    (hub_repo / "weights.pt").unlink()
    with pytest.raises(DataError, match="cannot load 'tiny_cifar' from torch.hub repo"):
        HubCloud(str(hub_repo), "tiny_cifar", **local).open()
