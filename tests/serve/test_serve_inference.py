"""`pixelwise serve` without a browser: model loading, the request functions, bad uploads, the CLI."""

import sys

import numpy as np
import pytest
from PIL import Image

import pixelwise
from pixelwise.cli import main
from pixelwise.data.palette import colorize, voc_palette
from pixelwise.errors import PixelwiseError
from pixelwise.inference import segment
from pixelwise.serve import (
    ServeOptions,
    find_demo_checkpoints,
    legend_html,
    legend_rows,
    load_served_models,
    load_upload,
    render_overlay,
    save_mask_png,
    segment_image,
)
from pixelwise.serve.inference import BOX_COLOUR, colour_mask, display_scale, summary_markdown
from pixelwise.serve.models import SMALL_PROPOSALS

NAMES = ["background", "disc", "square", "triangle"]


@pytest.fixture(scope="module")
def served(serve_ckpts):
    return load_served_models([serve_ckpts["fcn8s"], serve_ckpts["deconvnet"]],
                              [(serve_ckpts["fcn8s"], serve_ckpts["deconvnet"])])


def test_models_from_checkpoints_and_a_pair(served, serve_ckpts):
    fcn, deconv, ens = served
    assert [m.kind for m in served] == ["fcn", "deconvnet", "ensemble"]
    assert fcn.label.startswith("FCN-8s · ") and deconv.label.startswith("DeconvNet · ")
    assert ens.label.startswith("EDeconvNet (mean) · ")
    assert all(m.class_names == NAMES for m in served)
    assert not fcn.uses_proposals and deconv.uses_proposals and ens.uses_proposals
    # a DeconvNet on 96-px proposals gets the demo's box rules, not the paper's 112-px minimum
    assert deconv.proposal_defaults == SMALL_PROPOSALS and ens.proposal_defaults == SMALL_PROPOSALS


def test_demo_folder_discovery(tmp_path, serve_ckpts):
    demo = tmp_path / "demo-out"
    (demo / "fcn8s").mkdir(parents=True)
    (demo / "deconvnet").mkdir()
    (demo / "fcn8s" / "last.pt").write_bytes(serve_ckpts["fcn8s"].read_bytes())
    (demo / "deconvnet" / "best.pt").write_bytes(serve_ckpts["deconvnet"].read_bytes())
    (demo / "deconvnet" / "last.pt").write_bytes(b"")  # best.pt is preferred
    assert find_demo_checkpoints(demo) == {"fcn8s": demo / "fcn8s" / "last.pt",
                                           "deconvnet": demo / "deconvnet" / "best.pt"}
    models = load_served_models(demo_dir=demo)
    assert [m.kind for m in models] == ["fcn", "deconvnet", "ensemble"]
    # the same pair named again is served once
    again = load_served_models(pairs=[(demo / "fcn8s", demo / "deconvnet")], demo_dir=demo)
    assert [m.kind for m in again] == ["ensemble", "fcn", "deconvnet"]


def test_no_models_is_one_clear_line(tmp_path):
    with pytest.raises(PixelwiseError, match="no models to serve.*pixelwise demo --out"):
        load_served_models(demo_dir=tmp_path / "nothing-here")
    with pytest.raises(PixelwiseError, match="no checkpoint"):
        load_served_models([tmp_path])  # a folder without best.pt / last.pt


def test_fcn_request_matches_predict(served, scene_png, tmp_path):
    path, image = scene_png
    fcn = served[0]
    loaded = load_upload(path)
    np.testing.assert_array_equal(loaded, image)
    seg = segment_image(fcn, loaded, ServeOptions(proposals="selective-search"))  # ignored for FCN
    np.testing.assert_array_equal(seg.mask, segment(fcn.model, image).argmax(0))
    assert seg.boxes is None and seg.seconds > 0
    rows = legend_rows(seg.mask, seg.class_names)
    counts = np.bincount(seg.mask.ravel(), minlength=4)
    assert len(rows) >= 2  # random scorers: several classes
    assert sum(r["share"] for r in rows) == pytest.approx(1.0, abs=1e-4)
    for row in rows:
        assert row["name"] == NAMES[row["index"]] and row["pixels"] == counts[row["index"]]
        assert row["colour"] == "#{:02x}{:02x}{:02x}".format(*voc_palette(256)[row["index"]])
    html = legend_html(rows)
    for row in rows:
        assert row["name"] in html and f"{100 * row['share']:.1f}&nbsp;%" in html
    np.testing.assert_array_equal(colour_mask(seg.mask), colorize(seg.mask))
    assert "s** to segment" in summary_markdown(fcn, seg) and "96x96 px" in summary_markdown(fcn, seg)
    # overlay: opacity 0 is the image, 1 is the class colour wherever a class is not background
    np.testing.assert_array_equal(render_overlay(image, seg.mask, 0.0), image)
    full = render_overlay(image, seg.mask, 1.0)
    fg = seg.mask != 0
    np.testing.assert_array_equal(full[fg], colorize(seg.mask)[fg])
    # display: a 96-px scene is shown 5x larger, in whole pixel blocks
    assert display_scale(image.shape) == 5
    big = render_overlay(image, seg.mask, 0.5, scale=5)
    np.testing.assert_array_equal(big[::5, ::5], render_overlay(image, seg.mask, 0.5))
    # download: an index PNG (palette), pixel value = class index, written whole
    out = save_mask_png(seg.mask, tmp_path / "masks", "my scene?.png")
    assert out.name == "my_scene_mask.png" and out.parent.parent == tmp_path / "masks"
    assert not [p for p in out.parent.iterdir() if p != out]  # no temporary file left
    with Image.open(out) as im:
        assert im.mode == "P"
        np.testing.assert_array_equal(np.asarray(im), seg.mask)


def test_deconvnet_and_ensemble_requests_draw_their_boxes(served, scene_png):
    _, image = scene_png
    for entry in served[1:]:
        seg = segment_image(entry, image, ServeOptions(proposals="sliding", top_k=5))
        assert seg.boxes is not None and 1 <= len(seg.boxes) <= 5
        assert seg.info["proposals"] == "sliding" and "sliding boxes" in summary_markdown(entry, seg)
        plain = render_overlay(image, seg.mask, 0.5)
        boxed = render_overlay(image, seg.mask, 0.5, seg.boxes)
        changed = np.any(plain != boxed, axis=2)
        assert changed.any()
        assert np.all(boxed[changed] == BOX_COLOUR)
        x0, y0 = max(int(seg.boxes[0][0]), 0), max(int(seg.boxes[0][1]), 0)
        assert tuple(boxed[y0, x0]) == BOX_COLOUR  # the best box's corner
    seg = segment_image(served[1], image, ServeOptions(proposals="none", tta="flip"))
    assert seg.boxes is None and seg.info["views"] == 2


def test_bad_options_are_one_line(served, scene_png):
    _, image = scene_png
    with pytest.raises(PixelwiseError, match="unknown test-time augmentation"):
        segment_image(served[0], image, ServeOptions(tta="sideways"))
    with pytest.raises(PixelwiseError, match="tiles must be at least 32"):
        segment_image(served[0], image, ServeOptions(tile=8))


def test_bad_uploads_are_clear_one_line_messages(tmp_path, scene_png):
    good, _ = scene_png

    def message(path, **kw) -> str:
        with pytest.raises(PixelwiseError) as info:
            load_upload(path, **kw)
        text = str(info.value)
        assert "\n" not in text and "Traceback" not in text
        assert str(tmp_path) not in text  # the upload's name, not the server's temporary path
        return text

    assert "upload one" in message(None)
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    assert message(empty) == "empty.png: the file is empty"
    text = tmp_path / "notes.png"
    text.write_text("this is not an image\n" * 20)
    assert message(text).startswith("notes.png is not an image")
    truncated = tmp_path / "half.png"
    data = good.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    assert message(truncated).startswith("half.png: unreadable image")
    huge = tmp_path / "huge.png"
    Image.new("L", (6000, 5000)).save(huge)  # 30 megapixels, a few kB of PNG
    assert message(huge) == ("huge.png is 6000x5000 (30.0 megapixels); the limit is 25 megapixels: "
                             "downscale it first")
    assert message(good, max_megabytes=0.001).startswith("scene.png is 0.0")
    assert "the limit is 0.001 MB" in message(good, max_megabytes=0.001)


def test_cli_errors_are_one_line(tmp_path, capsys, serve_ckpts):
    assert main(["serve", "--demo-dir", str(tmp_path / "none")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no models to serve" in err
    assert main(["serve", "--fcn", str(serve_ckpts["fcn8s"])]) == 2
    assert "in pairs" in capsys.readouterr().err


def test_cli_without_gradio_says_what_to_install(monkeypatch, capsys, serve_ckpts):
    monkeypatch.setitem(sys.modules, "gradio", None)  # import gradio -> ImportError
    assert main(["serve", "--checkpoint", str(serve_ckpts["fcn8s"])]) == 2
    assert "pip install 'pixelwise[serve]'" in capsys.readouterr().err


def test_page_builds(served, tmp_path):
    gr = pytest.importorskip("gradio")
    from pixelwise.serve.app import build_app, write_examples

    examples = write_examples(tmp_path / "examples", count=2, size=64)
    assert [p.name for p in examples] == ["scene_1.png", "scene_2.png"]
    with Image.open(examples[0]) as im:
        assert im.size == (64, 64)
    app = build_app(served, workdir=tmp_path / "masks", examples=examples)
    assert isinstance(app, gr.Blocks)
    assert pixelwise.serve.app.TITLE in app.title


def test_edeconvnet_of_demo_like_members(serve_ckpts, tmp_path, capsys):
    """The demo's DeconvNet (96-px proposals, deep-supervision scorers) pairs with its FCN-8s, in
    memory (serve, predict --fcn/--deconvnet) and as a `pixelwise ensemble` checkpoint; the
    DeconvNet's BN epsilon and proposal padding are kept."""
    import torch

    from pixelwise.models.assemble import build_edeconvnet
    from pixelwise.models.deconvnet import CAFFE_BN_EPS

    fcn = pixelwise.load_model(serve_ckpts["fcn8s"])
    deconv = pixelwise.load_model(serve_ckpts["deconvnet"])
    ens = build_edeconvnet(fcn, deconv)
    assert ens.deconvnet.input_size == 96 and not ens.deconvnet.deep_supervision
    x = torch.randn(1, 3, 96, 96)
    with torch.no_grad():
        assert torch.equal(ens.deconvnet(x), deconv(x))
    out = tmp_path / "edeconvnet.pt"
    assert main(["ensemble", "--fcn", str(serve_ckpts["fcn8s"]), "--deconvnet", str(serve_ckpts["deconvnet"]),
                 "-o", str(out)]) == 0
    capsys.readouterr()
    assert pixelwise.load_model(out).deconvnet.input_size == 96
    released = pixelwise.create_model("deconvnet", num_classes=4, width=0.03125, caffe_bn=True,
                                      proposal_pad="black").eval()
    ens = build_edeconvnet(fcn, released)
    assert ens.deconvnet.proposal_pad == "black"
    assert all(m.eps == CAFFE_BN_EPS for m in ens.deconvnet.modules() if isinstance(m, torch.nn.BatchNorm2d))


def test_port_in_use_is_one_line(serve_ckpts, capsys):
    pytest.importorskip("gradio")
    import socket

    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        assert main(["serve", "-c", str(serve_ckpts["fcn8s"]), "--port", str(port), "--examples", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"pixelwise serve: error: cannot serve on 127.0.0.1:{port}: the port is in use; choose another with --port"
