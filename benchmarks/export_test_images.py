"""Write a config's test images as `OUT/<class>/<n>.png`, for `owsd predict` on real images it can score.

The PNGs are the source's images at the config's `data.image_size`, as precompute loads them, so predict sees
exactly the pixels the IIN was tested on and its accuracy can be compared with `owsd fit`'s test accuracy:

    python benchmarks/export_test_images.py --config lightning_configs/demo.yaml --out runs/demo_test_digits
"""

from __future__ import annotations

import sys
from pathlib import Path

from PIL import Image

from owsd.commands.output import OutputFolder
from owsd.commands.settings import experiment_parser, parse


def main(argv: list[str]) -> None:
    config, objects, config_yaml = parse(
        experiment_parser("export_test_images", __doc__.splitlines()[0]), ["export", *argv]
    )
    data = objects.data
    source = data.pipeline.source
    names = source.classes

    with OutputFolder(Path(config.out), config_yaml) as folder:
        for position in data.split.test:
            label = source.items[position][1]
            pixels = source.load(position, data.pipeline.image_size).permute(1, 2, 0).numpy()
            (folder / names[label]).mkdir(exist_ok=True)
            Image.fromarray(pixels).save(folder / names[label] / f"{position}.png")
    print(f"wrote {len(data.split.test)} test images to {config.out}")


if __name__ == "__main__":
    main(sys.argv[1:])
