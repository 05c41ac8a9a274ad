"""``pixelwise serve`` under load: a few seconds of concurrent clients on loopback (the short
version of benchmarks/serve_load.py), a request over the limits, and the bounded mask folder."""

import os

import numpy as np
import pytest
from PIL import Image

from pixelwise.serve.inference import prune_masks

pytest.importorskip("gradio")


@pytest.fixture
def page(serve_ckpts, tmp_path):
    """The page serving the tiny FCN-8s in this process (1 request at a time, queue of 4, 0.02 MP)."""
    from pixelwise.serve.app import build_app, launch
    from pixelwise.serve.load import free_port
    from pixelwise.serve.models import load_served_models

    models = load_served_models([serve_ckpts["fcn8s"]], device="cpu")
    app = build_app(models, workdir=tmp_path / "masks", concurrency=1, queue_size=4, max_megapixels=0.02)
    url = launch(app, port=free_port(), max_megabytes=1)
    try:
        yield url, models[0].label
    finally:
        app.close()


def test_concurrent_clients_are_served_without_errors(page, scene_png, tmp_path):
    from pixelwise.serve.load import Request, run_load

    url, label = page
    # six different pictures (the scene rolled): identical concurrent outputs would share gradio's
    # content-addressed cache file, which gradio may rewrite while another client downloads it
    scenes = []
    for i in range(6):
        scenes.append(tmp_path / f"scene{i}.png")
        Image.fromarray(np.roll(scene_png[1], 13 * i, axis=1)).save(scenes[-1])
    report = run_load(url, [Request(s, label) for s in scenes], clients=3, seconds=60, max_requests=6,
                      pid=os.getpid())
    assert report.served == 6 and not report.errors, report.lines()
    assert 0 < report.percentile(50) <= report.percentile(95)
    assert report.rss and report.to_dict()["peak_mb"] > 0
    big = tmp_path / "big.png"  # 0.04 MP, over the page's 0.02
    Image.fromarray(np.zeros((200, 200, 3), np.uint8)).save(big)
    refused = run_load(url, [Request(big, label)], clients=1, seconds=30, max_requests=1)
    (message,) = refused.errors
    assert "megapixels" in message and "\n" not in message and refused.served == 0


def test_only_the_newest_masks_are_kept(tmp_path):
    for i in range(5):
        (tmp_path / f"mask-{i}").mkdir()
        os.utime(tmp_path / f"mask-{i}", ns=(i * 10**9, i * 10**9))
    assert prune_masks(tmp_path, 2) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mask-3", "mask-4"]
