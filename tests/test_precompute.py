"""The precompute cache: resumable, shared across runs, identical across process counts, and the
cloud shown nothing but scrambled images."""

import re
import shutil
import signal
import subprocess
import time
from types import SimpleNamespace

import torch

from owsd.cli import main
from owsd.components.encoder import Encoder
from owsd.components.generator import ScramblingGenerator
from owsd.components.key import load_key
from owsd.components.ledger import KeyLedger, KeyRecord
from owsd.components.timm_models import ModelSpec
from owsd.data.cache import PairCache
from owsd.data.sources import ImageFolderSource
from owsd.errors import OWSDError
from owsd.pipeline import Pipeline
from owsd.precompute import MEETING_FILE, PrecomputeModule, Work
from tests import helpers
from tests.conftest import MNIST_TINY_CONFIG, TINY_IMAGES, owsd_process, row_caches, tiny_args
from tests.test_pipeline import tiny_pipeline


def cached(workdir, cloud: str | None = None) -> dict[str, dict[str, torch.Tensor]]:
    """Every cached row by image id (of the one cache, or the one of `cloud`), as a fresh reader sees it."""
    (directory,) = [
        folder
        for folder in row_caches(workdir / "cache")
        if cloud in (None, PairCache.existing(folder).description["cloud"])
    ]
    table = PairCache.existing(directory).table()
    return {
        image_id: {"labels": table.labels[row], **{name: field[row] for name, field in table.fields.items()}}
        for row, image_id in enumerate(table.image_ids)
    }


def shared_ledger(workdir) -> list[str]:
    """One ledger for runs in sub-folders of `workdir`, as for runs of one organisation."""
    return ["--data.scrambler.ledger_file", str(workdir / "ledger.sqlite")]


def ledger_keys(workdir) -> list[KeyRecord]:
    return KeyLedger(workdir / "ledger.sqlite", "test").keys()  # where tiny_args puts it


def assert_same_cache(first, second):
    assert first.keys() == second.keys() and len(first) == 20
    for image_id in first:
        for field in first[image_id]:
            assert torch.equal(first[image_id][field], second[image_id][field]), (image_id, field)


def test_cache_hit_builds_no_model_and_reuses_rows_across_label_subsets(workdir, monkeypatch):
    main(tiny_args(workdir, "--trainer.max_epochs", "1"))
    before = {p.name: p.stat().st_mtime_ns for p in (workdir / "cache").rglob("*-*")}  # shards and packs
    monkeypatch.setattr("timm.create_model", lambda *a, **k: (_ for _ in ()).throw(AssertionError("model built")))
    main(tiny_args(workdir, "--trainer.max_epochs", "1"))
    main(tiny_args(workdir, "--trainer.max_epochs", "1", "--data.split.labels.names", "[frog, ship]"))
    after = {p.name: p.stat().st_mtime_ns for p in (workdir / "cache").rglob("*-*")}
    assert after == before


def test_killed_precompute_resumes_to_the_uninterrupted_cache(workdir):
    slow = ["--data.cloud", "tests.helpers.SlowLocalCloud", "--data.cloud.init_args.name", "test_resnet"]
    slow += ["--data.cloud.init_args.weights", "random", "--data.cloud.init_args.seconds", "1.5"]
    args = tiny_args(workdir / "resumed", *slow, "--trainer.max_epochs", "1", *shared_ledger(workdir))
    process = owsd_process(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not list((workdir / "resumed" / "cache").glob("*/shard-*.pt")) and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    partial = len(cached(workdir / "resumed"))
    assert 0 < partial < 20, "the kill landed mid-way"
    (recorded,) = [key.exposed for key in ledger_keys(workdir)]
    assert partial <= recorded <= partial + 8, "the ledger over-counts only the batch in flight"
    main([*args, "--data.cloud.init_args.seconds", "0"])  # resumed in this process (a fresh one costs ~9 s), at speed
    assert [(key.exposed, key.resends) for key in ledger_keys(workdir)] == [(20, recorded - partial)]
    same_key = ["--data.scrambler.key_file", str(workdir / "resumed" / "keys" / "test.key")]
    same_cloud = ["--data.cloud", "owsd.components.cloud.LocalCloud", "--data.cloud.init_args.name", "test_resnet"]
    same_cloud += ["--data.cloud.init_args.weights", "random"]  # what SlowLocalCloud answers, at full speed
    main(tiny_args(workdir / "straight", *same_key, *same_cloud, "--trainer.max_epochs", "1"))  # in this process
    assert_same_cache(cached(workdir / "resumed"), cached(workdir / "straight"))


SPY_CLOUD = [
    "--data.cloud",
    "tests.helpers.SpyCloud",
    "--data.plaintext_baseline",
    "false",
    "--trainer.max_epochs",
    "1",
]


def test_only_scrambled_images_reach_the_cloud(workdir):
    helpers.RECEIVED.clear(), helpers.CLOSED.clear()
    main(tiny_args(workdir, *SPY_CLOUD))
    assert len(helpers.CLOSED) == 1, "the connection precompute opened is closed"
    received = torch.cat(helpers.RECEIVED)
    assert received.dtype == torch.uint8 and received.shape == (20, 3, 32, 32)
    # Re-scramble every image from scratch with the key: the spy saw exactly these bytes, nothing else.
    source = ImageFolderSource(TINY_IMAGES)
    images = torch.stack([source.load(i, 64) for i in range(len(source.items))])
    encoder = Encoder(ModelSpec("test_efficientnet", "random"))
    key = load_key(workdir / "keys" / "test.key")
    generator = ScramblingGenerator(
        key.derive("generator/0"), encoder.embedding_dim, 32, 64
    )  # independent of Scrambler
    with torch.inference_mode():
        expected = generator.scramble(encoder(images)).pixels
    assert torch.equal(received, expected)
    plaintext = torch.nn.functional.interpolate(images.float(), size=32, mode="area").round().to(torch.uint8)
    assert not any(torch.equal(r, p) for r in received for p in plaintext)


def test_an_encoder_ensemble_sends_each_embedding_under_its_own_subkey(workdir):
    helpers.RECEIVED.clear()
    encoders = "[{name: test_efficientnet, weights: random}, {name: test_resnet, weights: random}]"
    main(tiny_args(workdir, "--data.encoders", encoders, *SPY_CLOUD))
    rows = cached(workdir)
    assert rows["frog/cifar10_04_6.png"]["embedding"].shape == (256 + 96,)  # both encoders' embeddings
    assert rows["frog/cifar10_04_6.png"]["cloud"].shape == (2 * 1000,)  # one cloud answer per encoder
    first, second = torch.cat(helpers.RECEIVED[0::2]), torch.cat(helpers.RECEIVED[1::2])
    assert len(first) == len(second) == 20
    assert (first != second).float().mean() > 0.9
    # The ledger counts every scrambled image sent against the configured key file's (root) fingerprint.
    fingerprint = load_key(workdir / "keys" / "test.key").fingerprint
    assert [(key.fingerprint, key.exposed) for key in ledger_keys(workdir)] == [(fingerprint, 40)]


def test_a_grown_selection_sends_only_its_new_images(workdir, capsys):
    """The cache is keyed by the pipeline, not by the selection: 20 → 22 digits per label computes 20 images."""
    fit = ["fit", "--config", str(MNIST_TINY_CONFIG), "--trainer.max_epochs", "1", "--data.split.images_per_label"]
    main([*fit, "20"])
    assert "200 of 200 images to precompute" in capsys.readouterr().err
    main([*fit, "22"])
    assert "20 of 220 images to precompute" in capsys.readouterr().err
    (key,) = KeyLedger(workdir / ".owsd" / "ledger.sqlite", "test").keys()
    assert (key.exposed, key.resends) == (220, 0)
    (directory,) = row_caches(workdir / ".owsd" / "cache")
    assert len(PairCache.existing(directory).table().image_ids) == 220


def test_another_cloud_reuses_the_embeddings_runs_no_encoder_and_stores_the_same_rows(workdir, monkeypatch):
    """Embeddings are cached per encoder, apart from the key and the cloud (as the regime search swaps clouds)."""
    main(tiny_args(workdir / "reused", "--trainer.max_epochs", "1"))
    (embeddings,) = (workdir / "reused" / "cache" / "embeddings").iterdir()
    first = PairCache.existing(embeddings).table()
    assert len(first.image_ids) == 20 and set(first.fields) == {"embedding"}
    same_key = ["--data.scrambler.key_file", str(workdir / "reused" / "keys" / "test.key")]
    other_cloud = ["--data.cloud", "owsd.components.cloud.LocalCloud", "--data.cloud.init_args.name", "test_resnet"]
    other_cloud += ["--data.cloud.init_args.weights", "random", "--trainer.max_epochs", "1"]
    main(tiny_args(workdir / "fresh", *same_key, *other_cloud))  # its own cache folder: runs the encoder

    monkeypatch.setattr(Encoder, "forward", lambda *a: (_ for _ in ()).throw(AssertionError("encoder run")))
    main(tiny_args(workdir / "reused", *same_key, *other_cloud))
    fresh = cached(workdir / "fresh")
    (folder,) = row_caches(workdir / "fresh" / "cache")
    reused = cached(workdir / "reused", PairCache.existing(folder).description["cloud"])
    assert_same_cache(reused, fresh)
    for row, image_id in enumerate(first.image_ids):
        assert torch.equal(reused[image_id]["embedding"], first.fields["embedding"][row])
    (key,) = ledger_keys(workdir / "reused")
    assert (key.exposed, key.resends) == (20, 20), "the other cloud was sent every image, and the ledger knows"


def test_rotating_keys_are_precomputed_one_key_after_the_other(tmp_path):
    """Before: batches in source order mixed every key, so each batch built (and kept) most keys' generators."""
    from lightning.pytorch import Trainer

    from owsd.components.scrambler import Defences
    from owsd.precompute import plan_work

    pipeline = tiny_pipeline(tmp_path).with_defences(Defences(rotate_every=10))  # batches of 8
    work = plan_work(pipeline, list(range(20)), Trainer(accelerator="cpu", logger=False))
    rotations = [pipeline.scramblers()[0].rotation_of(batch) for batch in work.batches]
    assert [len(batch) for batch in work.batches] == [8, 8, 4]
    assert all(len(set(keys)) <= 2 for keys in rotations) and sum(rotations, []) == sorted(sum(rotations, []))


def test_two_fits_started_together_on_one_cache_send_each_image_once(workdir):
    """Before: both sent all 20 images (the ledger: 20 exposed, 20 resends)."""
    slow = ["--data.cloud", "tests.helpers.SlowLocalCloud", "--data.cloud.init_args.name", "test_resnet"]
    slow += ["--data.cloud.init_args.weights", "random", "--data.cloud.init_args.seconds", "1.5"]
    main(["key", "new", str(workdir / "keys" / "test.key")])  # one key for both, as an organisation has
    args = tiny_args(workdir, *slow, "--trainer.max_epochs", "1")
    pipes = {"stdout": subprocess.DEVNULL, "stderr": subprocess.PIPE}
    with owsd_process(args, **pipes) as first, owsd_process(args, **pipes) as second:
        said = [process.communicate(timeout=300)[1] for process in (first, second)]
    assert first.returncode == second.returncode == 0, said
    assert [(key.exposed, key.resends) for key in ledger_keys(workdir)] == [(20, 0)]
    waited = [text for text in said if "another owsd is sending its images; waiting for it to finish" in text]
    assert len(waited) == 1 and "0 of 20 images to precompute" in waited[0]


def rank_one_sees(rank_zero: Pipeline, here: Pipeline, meeting: bool = True) -> str | None:
    """What the check of `PrecomputeModule` says on rank 1 (with `here`'s config) of the work that rank 0 (with
    `rank_zero`'s) decided; None when it sees what rank 0 sees."""
    token = "0123456789abcdef"
    work = Work([], rank_zero.cache.description, meeting=f"{MEETING_FILE}{token}", token=token)
    if meeting:
        (rank_zero.cache_dir / work.meeting).write_text(token)
    module = PrecomputeModule(here, [])
    module._trainer = SimpleNamespace(global_rank=1)  # a rank other than 0, with no launch
    try:
        module._sees_what_rank_zero_sees(work)
    except OWSDError as error:
        return str(error)
    finally:
        (rank_zero.cache_dir / work.meeting).unlink(missing_ok=True)  # as rank 0 does once all have looked
    return None


def test_a_rank_that_does_not_see_what_rank_zero_sees_names_the_difference_and_the_fix(tmp_path):
    """Each check behind the two-node test (`test_distributed.py`, which launches nodes for one of them)."""
    rank_zero = tiny_pipeline(tmp_path)
    rank_zero.cache_dir.mkdir(parents=True)
    assert rank_one_sees(rank_zero, tiny_pipeline(tmp_path)) is None
    said = rank_one_sees(rank_zero, tiny_pipeline(tmp_path), meeting=False)
    assert "does not see rank 0's cache folder" in said and "a filesystem they all mount" in said
    node_local = {"key_file": tmp_path / "node1.key", "create_key": False}
    said = rank_one_sees(rank_zero, tiny_pipeline(tmp_path, scrambler=node_local))
    assert re.search(r"key file .*node1.key does not exist on this node: give every node the same key file", said)
    said = rank_one_sees(rank_zero, tiny_pipeline(tmp_path, scrambler={"size": 16}))
    assert "its config differs from rank 0's: generator (data.scrambler.size/channels)" in said
    shutil.copytree(TINY_IMAGES, tmp_path / "other", ignore=shutil.ignore_patterns("cifar10_04_6.png"))  # 19 images
    said = rank_one_sees(rank_zero, tiny_pipeline(tmp_path, source=tmp_path / "other"))
    assert "data.source differs from rank 0's" in said and "every node must see the same images" in said
    said = rank_one_sees(rank_zero, tiny_pipeline(tmp_path, plaintext_baseline=True))
    assert said == "its config differs from rank 0's in plaintext_baseline"
