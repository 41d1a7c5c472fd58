import numpy as np
import pytest
import torch
from PIL import Image

from owsd.analysis.plots import save_curve_plot, save_image_grid, save_pca_plot


def _assert_only_png(folder, path) -> Image.Image:
    assert sorted(p.name for p in folder.iterdir()) == [path.name]  # no temporary file left behind
    assert path.stat().st_size > 0
    with Image.open(path) as image:
        image.verify()
    image = Image.open(path)
    assert image.format == "PNG" and image.width > 0 and image.height > 0
    return image


def test_image_grid_puts_each_original_beside_its_scramble(tmp_path):
    rng = torch.Generator().manual_seed(0)
    originals = torch.zeros(5, 3, 20, 24, dtype=torch.uint8)  # black originals, another size
    scrambled = torch.randint(0, 256, (5, 3, 16, 16), generator=rng, dtype=torch.uint8)
    path = tmp_path / "grid.png"
    save_image_grid(originals, scrambled, path, columns=2)
    image = _assert_only_png(tmp_path, path)
    pad = 2
    assert image.size == (2 * (32 + pad) + pad, 3 * (16 + pad) + pad)  # 2 pairs per row, 3 rows
    pixels = torch.from_numpy(np.asarray(image.convert("RGB"))).permute(2, 0, 1)
    first_pair = pixels[:, pad : pad + 16, pad : pad + 32]
    assert first_pair[:, :, :16].max() == 0  # the resized original on the left
    assert torch.equal(first_pair[:, :, 16:], scrambled[0])  # its scramble on the right, unchanged


def test_image_grid_rejects_mismatched_counts(tmp_path):
    with pytest.raises(ValueError):
        save_image_grid(
            torch.zeros(2, 3, 8, 8, dtype=torch.uint8), torch.zeros(3, 3, 8, 8, dtype=torch.uint8), tmp_path / "x.png"
        )
    assert not any(tmp_path.iterdir())


def test_pca_plot_is_written_and_needs_two_labels(tmp_path):
    rng = torch.Generator().manual_seed(0)
    plain = torch.randn(20, 10, generator=rng).softmax(1)
    scrambled = torch.randn(20, 10, generator=rng).softmax(1)
    labels = torch.tensor([3, 7] * 10)
    path = tmp_path / "pca.png"
    save_pca_plot(plain, scrambled, labels, ("cat", "dog"), path)
    _assert_only_png(tmp_path, path)
    with pytest.raises(ValueError, match="two labels"):
        save_pca_plot(plain, scrambled, torch.arange(20) % 3, ("a", "b"), tmp_path / "bad.png")


def test_curve_plot_handles_missing_points_and_defences(tmp_path):
    curve = {
        "attack": "pair regression",
        "threat_model": "T3",
        "resource": "known pairs N",
        "resource_values": [10, 100, 1000],
        "metric": "accuracy",
        "scrambled": [0.1, None, 0.3],
        "unscrambled": [0.5, 0.8, 0.9],
        "chance": [0.1, 0.1, 0.1],
        "defences": {"fresh key": [0.1, 0.1, None]},
    }
    path = tmp_path / "curve.png"
    save_curve_plot(curve, path)
    _assert_only_png(tmp_path, path)
    save_curve_plot({**curve, "resource_values": [1, 2, 3]}, path)  # overwrite in place, linear axis
    _assert_only_png(tmp_path, path)
    with pytest.raises(ValueError, match="threat_model"):
        save_curve_plot({**curve, "threat_model": "T4"}, tmp_path / "bad.png")
    with pytest.raises(ValueError, match="chance"):
        save_curve_plot({**curve, "chance": [0.1]}, tmp_path / "bad.png")
