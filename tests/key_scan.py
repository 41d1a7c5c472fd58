"""What a leaked key would look like in a file or a log: the key's bytes, every subkey a generator is
expanded from, and the generator weights themselves (each is enough to scramble, or invert, as the user)."""

from __future__ import annotations

import base64
from pathlib import Path

from owsd.components.generator import ScramblingGenerator
from owsd.components.key import Key

WEIGHT_BYTES = 32  # the first eight float32 weights of a layer: never a coincidence in another file


def secret_forms(secret: bytes) -> list[bytes]:
    return [secret, secret.hex().encode(), secret.hex().upper().encode(), base64.b64encode(secret)]


def key_material(key: Key, embedding_dim: int, size: int, channels: int, encoders: int = 1) -> list[bytes]:
    """Every form of the key, of each encoder's generator subkey, and of that generator's weights."""
    forms = secret_forms(key._secret)
    for index in range(encoders):
        subkey = key.derive(f"generator/{index}")
        forms += secret_forms(subkey._secret)
        generator = ScramblingGenerator(subkey, embedding_dim, size, channels)
        for weights in generator.state_dict().values():
            if weights.numel() >= WEIGHT_BYTES // 4 and weights.dtype.is_floating_point:
                forms.append(weights.detach().float().flatten()[: WEIGHT_BYTES // 4].numpy().tobytes())
    return forms


def assert_no_key_material(forms: list[bytes], paths: list[Path], text: str = "") -> None:
    """No file among `paths`, and not `text` (logs, printed output), holds any of `forms`."""
    assert forms and paths, "nothing to scan"
    for path in paths:
        content = path.read_bytes()
        assert not any(form in content for form in forms), f"key material in {path}"
    assert not any(form in text.encode() for form in forms), "key material in the output or logs"
