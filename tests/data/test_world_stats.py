"""The built-in world's measured statistics (docs/data.md's calibration table)."""

from pixelwise.data.synthetic import SyntheticShapes
from pixelwise.data.world_stats import STATISTICS_HEADER, statistics_row, world_statistics


def test_world_statistics_count_what_the_scenes_hold():
    ds = SyntheticShapes("val", size=64, num_classes=4, length=6, seed=1)
    stats = world_statistics(ds)
    objects = [ds.objects(i) for i in range(len(ds))]
    assert stats["objects_per_image"] == sum(map(len, objects)) / 6
    assert abs(sum(stats["buckets"].values()) - 1) < 1e-9
    assert 0 < stats["background_pixels"] < 1 and stats["ms_per_scene"] > 0
    row = statistics_row(stats)
    assert row.startswith("| scenes | 4 | ") and row.count("|") == STATISTICS_HEADER.splitlines()[0].count("|")
