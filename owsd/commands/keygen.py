"""`owsd keygen PATH`: a new 256-bit key file, readable by its owner only."""

from __future__ import annotations

import argparse
from pathlib import Path

from owsd.components.key import Key, save_key


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="owsd keygen", description="Write a new 256-bit key file (mode 0600).")
    parser.add_argument("path", type=Path)
    path = parser.parse_args(argv[1:]).path
    key = Key.generate()
    save_key(key, path)
    print(f"wrote key {key.fingerprint} to {path}")
