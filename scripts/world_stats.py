"""Measure the built-in world's statistics (docs/data.md, the built-in world): objects per image,
background share, size buckets, nesting, occlusion and generation time, one table row per world.

    python scripts/world_stats.py --classes 4 --scenes 1000 --worlds scenes objects

The crop classifier's held-out accuracy, the other half of the calibration, is what
`pixelwise pretrain --classes N` prints.
"""

from __future__ import annotations

import argparse

from pixelwise.data.synthetic import WORLDS, SyntheticShapes
from pixelwise.data.world_stats import STATISTICS_HEADER, statistics_row, world_statistics


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--classes", type=int, nargs="+", default=[4, 8], help="class counts, background included [4 8]")
    p.add_argument("--scenes", type=int, default=1000, help="training scenes measured per row [1000]")
    p.add_argument("--size", type=int, default=96, help="scene side in pixels [96]")
    p.add_argument("--worlds", nargs="+", default=list(WORLDS), choices=WORLDS, help="worlds measured [all]")
    args = p.parse_args()
    print(STATISTICS_HEADER)
    for world in args.worlds:
        for classes in args.classes:
            ds = SyntheticShapes("train", size=args.size, num_classes=classes, length=args.scenes, world=world)
            print(statistics_row(world_statistics(ds)), flush=True)


if __name__ == "__main__":
    main()
