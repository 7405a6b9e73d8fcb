"""Synthetic data generation speed against a target of >= 50 images/s.

    .venv/bin/python bench/synthetic_speed.py [--num 200] [--size 256]

Measures, in one run: drawing alone, drawing + PNG encoding, and whole
synthetic trees (MediCat: one PNG per figure; IU X-ray: two views per study,
each written in the R2Gen and the OpenI layout; MIMIC: one to two JPEG views
per study plus the CXR and ED CSVs), as images per second of
wall-clock time and of this process's CPU time (the machine may be shared;
CPU time shows what one core does uncontended), and as ratios to the target.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from medcap.data import synthetic
from medcap.data.iu_xray import IU_XRAY
from medcap.data.medicat import MEDICAT
from medcap.registry import DATASETS

TARGET = 50.0


class Clock:
    def __enter__(self):
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self.wall
        self.cpu = time.process_time() - self.cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num", type=int, default=200)
    parser.add_argument("--size", type=int, default=256)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    truth = [synthetic.sample_findings(rng) for _ in range(args.num)]
    rows = []
    with Clock() as draw:
        images = [synthetic.draw_radiograph(f, rng, size=args.size) for f in truth]
    rows.append(("draw_radiograph", args.num, draw.wall, draw.cpu))
    with Clock() as encode:
        for image in images:
            synthetic.encode_png(image)
    rows.append(("draw + encode_png", args.num, draw.wall + encode.wall, draw.cpu + encode.cpu))
    with tempfile.TemporaryDirectory() as tmp:
        with Clock() as clock:
            MEDICAT.synthesize(Path(tmp) / "medicat", num=args.num, seed=0, image_size=args.size)
        rows.append(("medicat tree (figures)", args.num + max(1, args.num // 20), clock.wall, clock.cpu))
        with Clock() as clock:
            IU_XRAY.synthesize(Path(tmp) / "iu", num=args.num // 2, seed=0, image_size=args.size)
        rows.append(("iu_xray tree (drawn views)", 2 * (args.num // 2), clock.wall, clock.cpu))
        with Clock() as clock:
            tree = DATASETS.get("mimic").synthesize(Path(tmp) / "mimic", num=args.num, seed=0, image_size=args.size)
        rows.append(("mimic tree (jpg views)", sum(1 for _ in Path(tree).rglob("*.jpg")), clock.wall, clock.cpu))
    print(f"size {args.size}x{args.size}, {args.num} images per row; target {TARGET:.0f} images/s")
    print(f"{'what':28s} {'wall img/s':>10s} {'x target':>9s} {'cpu img/s':>10s} {'x target':>9s}")
    for name, count, wall, cpu in rows:
        print(f"{name:28s} {count / wall:10.1f} {count / wall / TARGET:9.2f} {count / cpu:10.1f} {count / cpu / TARGET:9.2f}")


if __name__ == "__main__":
    main()
