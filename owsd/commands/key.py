"""`owsd key new|rotate|list|budget`: make a key, replace a config's key, audit the ledger, change a budget.

`owsd keygen PATH` is `owsd key new PATH`. Keys show themselves only by fingerprint: no key bytes are
printed, logged or written to the ledger.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from owsd.components.key import Key, load_key, save_key
from owsd.components.ledger import DEFAULT_LEDGER, KeyLedger, KeyRecord, configured_budget


def main(argv: list[str]) -> None:
    args = argv[1:] if argv[0] == "key" else ["new", *argv[1:]]  # `keygen PATH` is `key new PATH`
    if args[:1] == ["rotate"]:
        rotate(args)
        return
    parser = argparse.ArgumentParser(prog="owsd key", description=__doc__.splitlines()[0])
    actions = parser.add_subparsers(dest="action", required=True)
    new = actions.add_parser("new", help="write a new 256-bit key file (mode 0600); refuses to overwrite")
    new.add_argument("path", type=Path)
    actions.add_parser("rotate", help="retire the key of --config's data.scrambler.key_file for a new one")
    listing = actions.add_parser("list", help="every key in the ledger: created, images exposed, resends, budget")
    budget = actions.add_parser(
        "budget", help="set the images a key may expose (`none` lifts the limit); a config cannot change it"
    )
    budget.add_argument("fingerprint", help="the key, as `owsd key list` names it")
    budget.add_argument("images", type=budget_value, help="a number of images ≥ 0, or none")
    for action in (listing, budget):
        action.add_argument(
            "--ledger", default=str(DEFAULT_LEDGER), help=f"the ledger file or postgresql:// URL ({DEFAULT_LEDGER})"
        )
    config = parser.parse_args(args)
    if config.action == "new":
        key = Key.generate()
        save_key(key, config.path)
        print(f"wrote key {key.fingerprint} to {config.path}")
    elif config.action == "budget":
        record = KeyLedger(config.ledger, "key budget").set_budget(config.fingerprint, config.images)
        limit = "no limit" if record.budget is None else f"a budget of {record.budget} images"
        print(f"key {record.fingerprint} has {limit}; {record.exposed} exposed so far")
    else:
        print(key_table(KeyLedger(config.ledger, "key list").keys()))


def budget_value(text: str) -> int | None:
    """`owsd key budget`'s number: an integer ≥ 0, or `none`."""
    if text.casefold() == "none":
        return None
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of images ≥ 0 or none")
    return int(text)


def rotate(args: list[str]) -> None:
    """Keep the old key beside the new one (renamed with its fingerprint), retired in the ledger.

    The config's key file is replaced in one step, so it always holds a key; the ledger marks the old key
    retired first, so a failure half-way leaves it unusable rather than silently in use.
    """
    from owsd.commands.settings import experiment_parser  # Lightning and jsonargparse: only `rotate` reads a config

    parser = experiment_parser(
        "owsd key rotate", "Retire the config's key and write a new one in its place.", out=False
    )
    settings = parser.parse_args(args[1:]).data.scrambler
    key_file = Path(settings.key_file)
    old, new = load_key(key_file), Key.generate()
    budget = configured_budget(settings.key_budget, settings.key_budget_file)
    kept = key_file.with_name(f"{key_file.stem}.{old.fingerprint}.retired{key_file.suffix}")
    staged = key_file.with_name(f".{key_file.name}.new")
    ledger = KeyLedger(settings.ledger_file, "key rotate")
    save_key(new, staged)
    try:
        ledger.retire(old.fingerprint, kept.resolve(), key_file.stat().st_mtime)
        os.link(key_file, kept)  # refuses to overwrite; same inode, so mode 0600 stays
        os.replace(staged, key_file)
    finally:
        staged.unlink(missing_ok=True)
    ledger.register(new.fingerprint, key_file.resolve(), time.time(), budget)
    print(f"retired key {old.fingerprint} (kept as {kept}); new key {new.fingerprint} in {key_file}")


def key_table(keys: list[KeyRecord]) -> str:
    """One line per key, oldest first."""
    lines = [f"{'fingerprint':18}{'created':21}{'exposed':>9}{'resends':>9}{'budget':>9}  {'status':19}key file"]
    for key in keys:
        created = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(key.created))
        budget = "none" if key.budget is None else str(key.budget)
        # an assessment's fresh key (deleted when it ended): its exposures are not the user's key's
        status = "retired" if key.retired else f"{key.assessment} assessment" if key.assessment else "active"
        lines.append(
            f"{key.fingerprint:18}{created:21}{key.exposed:9d}{key.resends:9d}{budget:>9}  {status:19}{key.key_file or ''}"
        )
    return "\n".join(lines)
