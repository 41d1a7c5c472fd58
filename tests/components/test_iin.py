import pytest
import torch

from owsd.components.iin import InternalInferenceNetwork, iin_features

BATCH = {"embedding": torch.ones(4, 6), "cloud": torch.zeros(4, 3), "plaintext_cloud": torch.full((4, 3), 2.0)}


@pytest.mark.parametrize(
    ("iin_input", "width", "first_plaintext"),
    [
        ("embedding+cloud", 9, False),
        ("embedding", 6, False),
        ("cloud", 3, False),
        ("embedding+plaintext_cloud", 9, True),
    ],
)
def test_features_follow_the_iin_input_switch(iin_input, width, first_plaintext):
    features = iin_features(BATCH, iin_input)
    assert features.shape == (4, width)
    assert (features[0, -1] == 2.0) == first_plaintext


def test_unknown_iin_input_is_rejected():
    with pytest.raises(ValueError, match="iin_input must be one of"):
        iin_features(BATCH, "pixels")


def test_iin_is_linear_batchnorm_relu_dropout_linear():
    iin = InternalInferenceNetwork(9, 5, hidden_size=16, dropout=0.25)
    kinds = [type(layer).__name__ for layer in iin.net]
    assert kinds == ["Linear", "BatchNorm1d", "ReLU", "Dropout", "Linear"]
    assert iin(torch.randn(3, 9)).shape == (3, 5)
