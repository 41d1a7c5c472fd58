"""The key ledger: exposures and resends per key, recorded before the send, budgeted, safe across processes."""

import json
import multiprocessing
import sqlite3

import pytest
import torch

from owsd.components.cloud import CloudClient
from owsd.components.generator import ScrambledImages
from owsd.components.ledger import KeyLedger, configured_budget, image_digests, read_budget_file
from owsd.components.scrambler import ScramblerSettings
from owsd.errors import ConfigError, KeyBudgetError
from tests.helpers import RECEIVED, SpyCloud


def pixels(count: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (count, 3, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def counts(ledger: KeyLedger) -> dict[str, tuple[int, int]]:
    return {key.fingerprint: (key.exposed, key.resends) for key in ledger.keys()}


def test_same_bytes_again_are_a_resend_not_a_new_exposure(tmp_path):
    ledger = KeyLedger(tmp_path / "ledger.sqlite", "precompute")
    batch = pixels(4)
    ledger.record("k1", image_digests(batch), ["a", "b", "c", "d"])
    ledger.record("k1", image_digests(batch[:2]), ["a", "b"])
    ledger.record("k2", image_digests(batch[:1]))
    assert counts(ledger) == {"k1": (4, 2), "k2": (1, 0)}
    with sqlite3.connect(tmp_path / "ledger.sqlite") as db:
        rows = db.execute("SELECT image_id, sends, command FROM exposures WHERE fingerprint = 'k1' ORDER BY image_id")
        assert rows.fetchall() == [
            ("a", 2, "precompute"),
            ("b", 2, "precompute"),
            ("c", 1, "precompute"),
            ("d", 1, "precompute"),
        ]


def test_digest_is_of_the_exact_bytes():
    batch = pixels(2)
    changed = batch.clone()
    changed[1, 0, 0, 0] ^= 1
    assert (
        image_digests(batch)[0] == image_digests(changed)[0] != image_digests(batch[1:])[0] != image_digests(changed)[1]
    )


@pytest.fixture(params=["sqlite", "postgres"])
def location(request, tmp_path) -> str:
    """Both stores: a SQLite file, and a fresh database on a real PostgreSQL server on loopback."""
    return str(tmp_path / "ledger.sqlite") if request.param == "sqlite" else request.getfixturevalue("postgres_url")


def _record_many(location: str, fingerprint: str, seed: int) -> None:
    ledger = KeyLedger(location, "precompute")
    for batch in range(20):
        ledger.record(fingerprint, image_digests(pixels(5, seed * 1000 + batch)))


def test_two_processes_recording_at_once_add_up(location):
    fork = multiprocessing.get_context("fork")
    workers = [fork.Process(target=_record_many, args=(location, "k", seed)) for seed in (1, 2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    assert counts(KeyLedger(location, "list")) == {"k": (200, 0)}


def _send_until_refused(location: str, seed: int, start, sent) -> None:
    """A sender that records one new image at a time, as fast as it can, until the budget refuses it."""
    ledger = KeyLedger(location, f"sender {seed}")
    start.wait()
    for index in range(1000):
        try:
            ledger.record("k", image_digests(pixels(1, seed * 100_000 + index)))
        except KeyBudgetError:
            break
        with sent.get_lock():
            sent.value += 1


def test_concurrent_senders_send_exactly_the_budget(location):
    budget, senders = 40, 4
    KeyLedger(location, "setup").register("k", None, 0.0, budget)
    fork = multiprocessing.get_context("fork")
    start, sent = fork.Barrier(senders), fork.Value("i", 0)
    workers = [fork.Process(target=_send_until_refused, args=(location, s, start, sent)) for s in range(senders)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
        assert worker.exitcode == 0
    assert sent.value == budget and counts(KeyLedger(location, "list")) == {"k": (budget, 0)}


def test_a_budget_is_set_once_and_changed_only_explicitly(location, tmp_path):
    ledger = KeyLedger(location, "fit")
    ledger.register("k", tmp_path / "k.key", 0.0, budget=5)
    ledger.register("k", tmp_path / "k.key", 0.0, budget=None)  # a config without key_budget lifts nothing
    ledger.register("k", tmp_path / "k.key", 0.0, budget=5)  # repeating it is fine
    with pytest.raises(ConfigError, match=r"key k has a budget of 5 .* asks for 9.*`owsd key budget k 9`"):
        ledger.register("k", tmp_path / "k.key", 0.0, budget=9)
    assert [key.budget for key in ledger.keys()] == [5]
    assert ledger.set_budget("k", 9).budget == 9 and ledger.set_budget("k", None).budget is None
    with pytest.raises(ConfigError, match="knows no key other"):
        ledger.set_budget("other", 3)


def test_the_pre_check_counts_images_sent_before_as_resends(location):
    ledger = KeyLedger(location, "predict")
    ledger.register("k", None, 0.0, budget=4)
    ledger.record("k", image_digests(pixels(4)), ["a", "b", "c", "d"])
    ledger.check("k", ["a", "b", "c", "d"])  # a resend-only run fits a spent budget
    with pytest.raises(KeyBudgetError, match="may send up to 1 more"):
        ledger.check("k", ["a", "e"])
    with pytest.raises(KeyBudgetError, match="may send up to 4 more"):  # two encoders: a second image per id
        ledger.check("k", ["a", "b", "c", "d"], images_per_id=2)


def test_a_postgres_url_never_holds_a_password_and_an_unreachable_server_is_named():
    with pytest.raises(ConfigError, match="must not hold a password"):
        KeyLedger("postgresql://owsd:secret@127.0.0.1/ledger", "fit")
    pytest.importorskip("psycopg")
    with pytest.raises(ConfigError, match=r"cannot reach the key ledger postgresql://owsd@127.0.0.1:9/ledger"):
        KeyLedger("postgresql://owsd@127.0.0.1:9/ledger", "fit").check("k", ["a"])


class _Dropping(CloudClient):
    """A service that receives the images, then the answer is lost (the connection drops)."""

    def __init__(self) -> None:
        super().__init__("dropping")
        self.received = 0

    def _classify(self, pixels: torch.Tensor) -> torch.Tensor:
        self.received += len(pixels)
        raise ConnectionError("connection reset")


def test_a_batch_is_counted_before_it_is_sent_and_its_retry_is_a_resend(tmp_path):
    ledger = KeyLedger(tmp_path / "ledger.sqlite", "precompute")
    cloud = _Dropping()
    cloud.ledger = ledger
    images = ScrambledImages(pixels(3), "k", ("a", "b", "c"))
    for _ in range(2):
        with pytest.raises(ConnectionError):
            cloud(images)
    assert cloud.received == 6 and counts(ledger) == {"k": (3, 3)}


def test_beyond_the_budget_nothing_is_sent_or_recorded(location, tmp_path):
    ledger = KeyLedger(location, "precompute")
    ledger.register("k", tmp_path / "k.key", 0.0, budget=5)
    cloud = SpyCloud().open()
    cloud.ledger = ledger
    cloud(ScrambledImages(pixels(4, 1), "k"))
    RECEIVED.clear()
    with pytest.raises(KeyBudgetError, match=r"key k has exposed 4 images and this run would send 2 more.*budget of 5"):
        cloud(ScrambledImages(pixels(2, 2), "k"))
    assert RECEIVED == [] and counts(ledger) == {"k": (4, 0)}
    cloud(ScrambledImages(torch.cat([pixels(4, 1), pixels(1, 2)]), "k"))  # 4 resends and 1 new image fit
    assert counts(ledger) == {"k": (5, 4)}
    with pytest.raises(KeyBudgetError, match="may send up to 1 more"):
        ledger.check("k", ["new"])


def test_a_retired_key_sends_nothing(location, tmp_path):
    ledger = KeyLedger(location, "precompute")
    ledger.record("k", image_digests(pixels(1)))
    ledger.retire("k", tmp_path / "k.retired.key", 0.0)
    with pytest.raises(KeyBudgetError, match="key k is retired"):
        ledger.record("k", image_digests(pixels(1, 1)))
    (key,) = ledger.keys()
    assert key.retired and key.exposed == 1 and key.key_file.endswith("k.retired.key")


def test_budget_file_gives_the_t1_budget_and_bad_files_are_named(tmp_path):
    budget = tmp_path / "key_budget.json"
    budget.write_text(json.dumps({"margin": 0.05, "configured": {"T1": {"budget": 0}, "T3": {"budget": 30}}}))
    assert read_budget_file(budget) == 0 and configured_budget(None, budget) == 0 and configured_budget(7, None) == 7
    budget.write_text(json.dumps({"configured": {"T3": {"budget": 30}}}))
    with pytest.raises(ConfigError, match="holds no configured.T1.budget"):
        read_budget_file(budget)
    with pytest.raises(ConfigError, match="does not exist"):
        read_budget_file(tmp_path / "missing.json")


def test_listing_a_missing_ledger_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="no key ledger at"):
        KeyLedger(tmp_path / "none.sqlite", "list").keys()
    assert not (tmp_path / "none.sqlite").exists()


def test_budget_settings_are_checked(tmp_path):
    with pytest.raises(ConfigError, match="not both"):
        ScramblerSettings(tmp_path / "k.key", key_budget=1, key_budget_file=tmp_path / "key_budget.json")
    with pytest.raises(ConfigError, match="key_budget=-1 must be ≥ 0"):
        ScramblerSettings(tmp_path / "k.key", key_budget=-1)
