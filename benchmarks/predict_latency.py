"""Latency of `owsd predict` on one image: embed, scramble, ask the cloud (local or remote), run the IIN.

Loads the models once, as `owsd predict` does, then times `--repeats` single-image predictions of the
config's test images and prints p50/p90/p99 in milliseconds (target: p50 < 200 ms with the demo models):

    python benchmarks/predict_latency.py --config lightning_configs/demo.yaml --ckpt_path CKPT
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

from owsd.__main__ import keep_freed_memory
from owsd.commands.settings import experiment_parser, parse
from owsd.prediction import Predictor, check_contract, load_checkpoint


def main(argv: list[str]) -> None:
    parser = experiment_parser("predict_latency", __doc__.splitlines()[0])
    parser.add_argument("--ckpt_path", type=Path, required=True)
    parser.add_argument("--repeats", type=int, default=50)
    config, objects, _ = parse(parser, ["latency", "--out", "unused", *argv])
    data, model = objects.data, load_checkpoint(config.ckpt_path)
    pipeline = data.pipeline
    check_contract(model, pipeline, config.ckpt_path)
    positions = data.split.test[: config.repeats]
    ids = [pipeline.source.items[p][0] for p in positions]
    images = [pipeline.source.load(p, pipeline.image_size)[None] for p in positions]
    times = []
    with Predictor(pipeline, model, ["warm-up", *ids]) as predictor:
        predictor(images[0], ["warm-up"])  # first calls allocate; a served model is warm
        for image_id, image in zip(ids, images):
            started = time.perf_counter()
            predictor(image, [image_id])
            times.append((time.perf_counter() - started) * 1000)
    quantiles = statistics.quantiles(times, n=100)
    print(f"predict, one image, {len(times)} runs: p50 {statistics.median(times):.0f} ms, "
          f"p90 {quantiles[89]:.0f} ms, p99 {quantiles[98]:.0f} ms")  # fmt: skip


if __name__ == "__main__":
    keep_freed_memory([sys.executable, __file__, *sys.argv[1:]])  # as the `owsd` command runs
    main(sys.argv[1:])
