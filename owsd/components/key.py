"""The secret key: 32 random bytes from which every scrambling generator's weights are expanded.

The generator's weights *are* the key (paper §3), so they are never drawn from a 32/64-bit seed: they
are expanded from 256 bits with SHAKE-256, an extendable-output function. A key only ever shows itself
through its fingerprint, a public hash that names it in logs and cache paths.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import stat
from pathlib import Path

from owsd.errors import KeyFileError
from owsd.ranks import launch_rank

KEY_BYTES = 32
FINGERPRINT_HEX_CHARS = 16
_DOMAIN = b"owsd/v1/"


class Key:
    """256 secret bits; `repr`, `str` and pickling never reveal them."""

    __slots__ = ("_secret",)

    def __init__(self, secret: bytes) -> None:
        if not isinstance(secret, bytes) or len(secret) != KEY_BYTES:
            raise KeyFileError(f"a key is exactly {KEY_BYTES} bytes")
        self._secret = secret

    @classmethod
    def generate(cls) -> Key:
        return cls(secrets.token_bytes(KEY_BYTES))

    @property
    def fingerprint(self) -> str:
        """Public name of the key: a truncated hash, safe for logs and paths."""
        return hashlib.sha256(_DOMAIN + b"fingerprint\0" + self._secret).hexdigest()[:FINGERPRINT_HEX_CHARS]

    def derive(self, context: str) -> Key:
        """An independent subkey per use (e.g. one generator per encoder of an ensemble)."""
        return Key(self.expand(f"subkey\0{context}", KEY_BYTES))

    def expand(self, context: str, num_bytes: int) -> bytes:
        """`num_bytes` pseudo-random bytes bound to this key and `context`."""
        shake = hashlib.shake_256(_DOMAIN + b"expand\0" + context.encode() + b"\0" + self._secret)
        return shake.digest(num_bytes)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Key) and secrets.compare_digest(self._secret, other._secret)

    def __hash__(self) -> int:
        return hash(self.fingerprint)

    def __repr__(self) -> str:
        return f"Key(fingerprint={self.fingerprint})"

    __str__ = __repr__

    def __reduce__(self) -> None:  # pickling is how objects reach checkpoints and loggers
        raise TypeError("a Key cannot be pickled; store the key file's path instead")


def save_key(key: Key, path: Path) -> None:
    """Write `key` to a new file readable by its owner only; never overwrite an existing key.

    The bytes go to a private temporary file first, which is then hard-linked into place: linking fails if
    the name exists, and a reader never sees a key file that is empty or half written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        with os.fdopen(os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as handle:
            os.fchmod(handle.fileno(), 0o600)
            handle.write(key._secret)
            handle.flush()
            os.fsync(handle.fileno())
        os.link(temp, path)
    except FileExistsError:
        raise KeyFileError(f"key file {path} already exists; refusing to overwrite it") from None
    finally:
        temp.unlink(missing_ok=True)


def load_or_create_key(path: Path, create: bool) -> tuple[Key, bool]:
    """The key at `path` and whether this process created it.

    With `create`, a missing key is made by rank 0 only. Another rank never waits for one: it reads the key only
    after rank 0 has made it (`owsd.distributed`), so a key file missing there is missing on its node, an
    error. Two processes that both believe they are rank 0 (two runs started at once) cannot both win: the
    loser of `save_key`'s link reads the winner's key.
    """
    path = Path(path)
    created = False
    if create and not path.exists():
        if launch_rank() != 0:
            raise KeyFileError(
                f"key file {path} does not exist on this node (rank {launch_rank()}), though rank 0 has it: "
                "give every node the same key file, on storage they share"
            )
        try:
            save_key(Key.generate(), path)
            created = True
        except KeyFileError:
            if not path.exists():
                raise
    return load_key(path), created


def load_key(path: Path) -> Key:
    """Read a key file, refusing one that is missing, of the wrong size, or readable by others."""
    path = Path(path)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise KeyFileError(f"key file {path} does not exist; create one with `owsd key new {path}`") from None
    if not stat.S_ISREG(mode):
        raise KeyFileError(f"key file {path} is not a regular file")
    if mode & 0o077:
        raise KeyFileError(
            f"key file {path} has mode {stat.S_IMODE(mode):04o}, so others may read it; run `chmod 600 {path}`"
        )
    secret = path.read_bytes()
    if len(secret) != KEY_BYTES:
        raise KeyFileError(f"key file {path} holds {len(secret)} bytes; a key file holds exactly {KEY_BYTES}")
    return Key(secret)
