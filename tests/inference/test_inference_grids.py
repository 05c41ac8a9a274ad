"""Comparison grids: one row per image, one column per model, a legend of the classes shown."""

import numpy as np
from PIL import Image

from pixelwise.viz.grids import comparison_grid


def test_grid_layout_titles_and_legend(tmp_path):
    images = [np.zeros((20, 30, 3), np.uint8), np.full((20, 30, 3), 200, np.uint8)]
    a = np.zeros((20, 30), np.uint8)
    a[5:10, 5:10] = 2
    b = np.ones((20, 30), np.uint8)
    b[0, 0] = 255
    columns = {"truth": [a, None], "fcn8s": [b, a], "deconvnet": [a, b]}
    fig = comparison_grid(images, columns, ["background", "cat", "dog"], row_titles=["one", "two"])
    axes = fig.get_axes()
    assert len(axes) == 2 * 4
    assert [ax.get_title() for ax in axes[:4]] == ["image", "truth", "fcn8s", "deconvnet"]
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend == ["background", "cat", "dog", "void"]
    assert any(t.get_text() == "n/a" for t in axes[5].texts)  # the missing truth
    path = tmp_path / "grid.png"
    fig.savefig(path)
    with Image.open(path) as im:
        assert im.size[0] > im.size[1] > 100
