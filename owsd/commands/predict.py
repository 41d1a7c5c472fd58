"""`owsd predict --config CFG --ckpt_path CKPT --images PATH... --out DIR`: classify new private images.

Each image is embedded, scrambled under the config's key and sent to its cloud (local or remote); the trained
IIN turns (embedding, answer) into the top-k labels. Writes `DIR/predictions.csv` and `DIR/predictions.json`;
prints images/s, and the accuracy when the images sit in folders named after the IIN's classes. The
checkpoint (by default the best of the newest `owsd fit` under `trainer.default_root_dir`) must have been
trained for this key, encoders and cloud. Each answered batch is kept in `DIR.partial` as it arrives: when
the cloud fails or the run is stopped, the answered images are kept, the others listed in `unanswered.txt`,
and the same command run again sends only those.
"""

from __future__ import annotations

import csv
import json
import logging
import sys
import time
from pathlib import Path

import torch
from tqdm import tqdm

from owsd.commands.output import OutputFolder
from owsd.commands.settings import experiment_parser, parse
from owsd.data.sources import IMAGE_SUFFIXES, load_image
from owsd.errors import ConfigError, DataError, KeyFileError
from owsd.files import append_json_lines, atomic_write, read_json_lines
from owsd.prediction import Predictor, check_contract, load_checkpoint
from owsd.ranges import Count

log = logging.getLogger("owsd")

ANSWERED, UNANSWERED = "answered.jsonl", "unanswered.txt"  # kept while predict runs


def main(argv: list[str]) -> None:
    parser = experiment_parser("owsd predict", __doc__.splitlines()[0])
    parser.add_argument(
        "--ckpt_path", type=Path, help="a checkpoint of `owsd fit` (default: the best of the newest fit of the config)"
    )
    parser.add_argument(
        "--images", type=Path, nargs="+", required=True, help="image files or folders (searched deeply)"
    )
    parser.add_argument("--top_k", type=Count, default=5, help="labels written per image")
    parser.add_argument("--batch_size", type=Count, default=16, help="images embedded and sent together")
    parser.add_argument(
        "--device", type=str, default="auto", help="where the models run: auto (cuda if any), cpu, cuda, cuda:1"
    )
    config, objects, config_yaml = parse(parser, argv)
    pipeline = objects.data.pipeline
    checkpoint = Path(config.ckpt_path) if config.ckpt_path else newest_best(objects.trainer, config.model.iin_input)
    model = load_checkpoint(checkpoint)
    if not Path(pipeline.scrambler.key_file).is_file():  # never a new key: the IIN was trained for an existing one
        raise KeyFileError(f"key file {pipeline.scrambler.key_file} does not exist (data.scrambler.key_file)")
    check_contract(model, pipeline, checkpoint)
    classes: list[str] = model.hparams["classes"]
    files = image_files([Path(p) for p in config.images])
    images = {path: load_image(path, pipeline.image_size) for path in files}  # all readable before any is sent
    rows: list[dict] = []
    progress = lambda: f"{len(rows)} of {len(files)} images answered, the others in unanswered.txt"  # noqa: E731
    settings = f"{config_yaml}\n{checkpoint}\n{files}"
    with OutputFolder(config.out, settings, progress=progress, pipeline=pipeline) as folder:
        rows += read_json_lines(folder / ANSWERED)  # what an interrupted predict kept
        todo = files[len(rows) :]
        (folder / UNANSWERED).write_text("".join(f"{path}\n" for path in todo))
        predictor = Predictor(pipeline, model, [str(p) for p in todo], device(config.device))
        started = time.perf_counter()
        bar = tqdm(total=len(files), initial=len(rows), unit="image", disable=not sys.stderr.isatty())
        with predictor, bar:
            for start in range(0, len(todo), config.batch_size):
                batch = todo[start : start + config.batch_size]
                probabilities = predictor(torch.stack([images[p] for p in batch]), [str(p) for p in batch])
                answered = [ranked(path, row, classes, config.top_k) for path, row in zip(batch, probabilities)]
                keep_answered(folder, answered, todo[start + len(batch) :])
                rows += answered
                bar.update(len(batch))
        seconds = time.perf_counter() - started
        write_predictions(folder, rows)
    print(summary(rows, len(todo), seconds, predictor.sent))
    log.info("wrote %s", config.out)


def device(name: str) -> torch.device:
    """`--device`: `auto` is the first GPU when there is one; a device this machine lacks is refused."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        chosen = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"--device {name!r} is not a device (auto, cpu, cuda, cuda:N)") from None
    if chosen.type == "cuda" and (not torch.cuda.is_available() or (chosen.index or 0) >= torch.cuda.device_count()):
        raise ConfigError(f"--device {name}: this machine has {torch.cuda.device_count()} CUDA devices")
    return chosen


def image_files(paths: list[Path]) -> list[Path]:
    """The image files named, and those under the folders named, in a fixed order."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files += sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        elif path.is_file():
            files.append(path)
        else:
            raise DataError(f"--images: {path} does not exist")
    if not files:
        raise DataError(f"--images: no images ({', '.join(IMAGE_SUFFIXES)}) in {', '.join(map(str, paths))}")
    return files


def ranked(path: Path, probabilities: torch.Tensor, classes: list[str], k: int) -> dict:
    """One image's top-k labels; its true label when it sits in a folder named after one of the classes."""
    top = probabilities.topk(min(k, len(classes)))
    truth = path.parent.name if path.parent.name in classes else None
    labels = [{"label": classes[i], "probability": round(float(p), 6)} for p, i in zip(top.values, top.indices)]
    return {"image": str(path), "true_label": truth, "top": labels}


def newest_best(trainer: dict, iin_input: str) -> Path:
    """The checkpoint `owsd fit` kept for the OWSD IIN in its newest run: only fit writes under
    `trainer.default_root_dir`, and it keeps one checkpoint per IIN and run, its best."""
    root = Path(trainer.get("default_root_dir") or ".")
    found = [path for path in root.rglob(f"{iin_input}-*.ckpt") if path.is_file()]
    if not found:
        raise ConfigError(f"no {iin_input} checkpoint under trainer.default_root_dir {root}: run `owsd fit` first, "
                          "or give --ckpt_path")  # fmt: skip
    newest = max(found, key=lambda path: path.stat().st_mtime_ns)
    log.info("checkpoint %s (the newest fit's best)", newest)
    return newest


def keep_answered(folder: Path, rows: list[dict], unanswered: list[Path]) -> None:
    """A batch's answers, on disk before the next batch is sent; and what is left to send."""
    append_json_lines(folder / ANSWERED, rows)
    atomic_write(folder / UNANSWERED, lambda temp: temp.write_text("".join(f"{path}\n" for path in unanswered)))


def write_predictions(folder: Path, rows: list[dict]) -> None:
    """The results, in place of the answers kept along the way."""
    (folder / ANSWERED).unlink(missing_ok=True)
    (folder / UNANSWERED).unlink(missing_ok=True)
    (folder / "predictions.json").write_text(json.dumps(rows, indent=1))
    with open(folder / "predictions.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        k = max(len(row["top"]) for row in rows)
        writer.writerow(["image", "true_label", *[f"{kind}_{r}" for r in range(1, k + 1) for kind in ("label", "p")]])
        for row in rows:
            ranks = [value for top in row["top"] for value in (top["label"], top["probability"])]
            writer.writerow([row["image"], row["true_label"] or "", *ranks])


def summary(rows: list[dict], answered: int, seconds: float, sent: int) -> str:
    """`answered` of the rows in this invocation (the rest were kept by an interrupted one)."""
    earlier = f" (and {len(rows) - answered} answered before)" if answered < len(rows) else ""
    rate = f"{answered / max(seconds, 1e-9):.1f} images/s"
    lines = [f"{answered} images in {seconds:.1f} s ({rate}){earlier}; {sent} sent"]
    known = [row for row in rows if row["true_label"] is not None]
    if known and len(known) == len(rows):
        top1 = sum(row["top"][0]["label"] == row["true_label"] for row in known) / len(known)
        top5 = sum(row["true_label"] in [t["label"] for t in row["top"][:5]] for row in known) / len(known)
        lines.append(f"accuracy on {len(known)} labelled images: top-1 {top1:.3f}, top-5 {top5:.3f}")
    return "\n".join(lines)
