"""The ``pixelwise serve`` page, built with gradio from :mod:`pixelwise.serve.inference`.

Left: the upload, example scenes, model and inference options, the Segment button and a status
line. Right: the overlay (opacity slider, proposal boxes), the colour mask, the legend (class,
colour, share of the image), the time taken and the index-PNG mask to download. Every error is
one line in the status box and a warning toast; tracebacks go to the server's log only.

gradio is imported here only (``pip install 'pixelwise[serve]'``); the page works with gradio 4 to 6
(keyword arguments a version lacks are left out).
"""

from __future__ import annotations

import inspect
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from pixelwise.errors import PixelwiseError, first_line
from pixelwise.serve import inference
from pixelwise.serve.inference import MAX_MEGABYTES, MAX_MEGAPIXELS
from pixelwise.serve.models import ServedModel

log = logging.getLogger("pixelwise.serve")

TITLE = "pixelwise · semantic segmentation"

TILE_CHOICES = ("off", "256", "512", "1024")

READY = "Upload an image or click an example."
"""The status line of a page without an image."""

CONCURRENCY = 1
"""Segment requests run at once by default (each already uses every core); the others wait in the queue."""

QUEUE_SIZE = 16
"""Requests that may wait in the queue by default; one more is refused with gradio's "queue is full"."""

LIGHT_CONCURRENCY = 4
"""Cheap events (upload preview, redraw, model change) run this many at once, beside the segment requests."""

STATE_SECONDS = 900
"""A page's kept result (image, mask, boxes: for redraws) is dropped this long after its last use."""

CACHE_CLEANUP = (600, 1800)
"""gradio's temporary files: every 10 min, those older than 30 min are deleted (disk stays bounded)."""

CSS = """
.gradio-container {max-width: 1400px !important; margin: 0 auto !important;}
#pw-header h1 {margin: 0 0 0.15em 0; font-size: 1.7em;}
#pw-header p {margin: 0; opacity: 0.85;}
#pw-run {min-height: 44px; font-size: 1.05em;}
.pw-title {font-weight: 600; margin: 0 0 0.3em 0;}
.pw-legend {border-collapse: collapse; width: 100%; font-size: 0.95em;}
.pw-legend, .pw-legend tr, .pw-legend th, .pw-legend td {border: 0 !important; background: none !important;}
.pw-legend th {text-align: left; font-weight: 600; opacity: 0.7; padding: 2px 8px;}
.pw-legend td {padding: 5px 8px; border-top: 1px solid rgba(128, 128, 128, 0.25) !important;
               vertical-align: middle;}
.pw-swatch {display: inline-block; width: 20px; height: 20px; border-radius: 4px;
            border: 1px solid rgba(0, 0, 0, 0.35); vertical-align: middle;}
.pw-share, .pw-pixels {text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap;}
.pw-pixels {opacity: 0.65;}
.pw-bar {width: 35%;}
.pw-bar span {display: block; height: 10px; border-radius: 5px; border: 1px solid rgba(0, 0, 0, 0.25);}
.pw-muted {opacity: 0.6; margin: 0.5em 0;}
.pw-caption p {font-size: 0.85em; opacity: 0.7; margin: -0.4em 0 0 0.2em;}
"""


def _gradio():
    try:
        import gradio as gr
    except ImportError:
        raise PixelwiseError("pixelwise serve needs gradio: pip install 'pixelwise[serve]'") from None
    return gr


def _kw(func, **kwargs) -> dict:
    """The ``kwargs`` that ``func`` (a gradio constructor or method) accepts in this gradio version."""
    params = inspect.signature(func).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return kwargs
    return {k: v for k, v in kwargs.items() if k in params}


def _style_goes_to_launch(gr) -> bool:
    """gradio 6 takes ``theme`` and ``css`` in ``launch()``; earlier versions in ``Blocks()``."""
    params = inspect.signature(gr.Blocks.launch).parameters
    return "css" in params and "theme" in params


def _theme(gr):
    system = ["ui-sans-serif", "system-ui", "-apple-system", "Segoe UI", "Roboto", "sans-serif"]
    mono = ["ui-monospace", "SFMono-Regular", "Menlo", "monospace"]
    try:  # system fonts: the page loads nothing from the internet
        return gr.themes.Soft(primary_hue="indigo", neutral_hue="slate", font=system, font_mono=mono)
    except Exception:  # pragma: no cover - a gradio without these theme options
        return None


def _header(models: Sequence[ServedModel]) -> str:
    listed = ", ".join(f"`{m.label.split(' · ')[0]}`" for m in models)
    return (
        f"# {TITLE}\n"
        "FCN (Long, Shelhamer, Darrell 2015) and DeconvNet (Noh, Hong, Han 2015). Upload an image or pick "
        "a built-in scene, choose a model and the inference options, press **Segment**: you get the "
        f"class mask, an overlay with DeconvNet's proposal boxes, and how much of the image each class covers. "
        f"Loaded: {listed}."
    )


@dataclass
class _Page:
    """The page's components that the events read and write, filled in by the layout builders."""

    upload: Any = None
    gallery: Any = None
    model: Any = None
    run: Any = None
    tile: Any = None
    tta: Any = None
    proposals: Any = None
    top_k: Any = None
    context: Any = None
    crf: Any = None
    overlay_view: Any = None
    mask_view: Any = None
    alpha: Any = None
    show_boxes: Any = None
    legend: Any = None
    status: Any = None
    summary: Any = None
    download: Any = None
    state: Any = None

    @property
    def inputs(self) -> list:
        """The inputs of a segment request, in the order of :meth:`_Requests.segment_request`."""
        return [self.upload, self.model, self.tile, self.context, self.tta, self.proposals, self.top_k, self.crf,
                self.alpha, self.show_boxes]

    @property
    def results(self) -> list:
        """What a request shows, in the order :meth:`_Requests.segment_request` returns it."""
        return [self.overlay_view, self.mask_view, self.legend, self.summary, self.download, self.status, self.state]


def _upload_and_examples(gr, page: _Page, examples: list[str], max_megapixels: float, max_megabytes: float) -> None:
    """The upload box and, when there are examples, their gallery and its caption."""
    page.upload = gr.File(label=f"Image (up to {max_megapixels:g} megapixels, {max_megabytes:g} MB)",
                          file_types=["image"], type="filepath", elem_id="pw-upload", height=100)
    if not examples:
        return
    rows = -(-len(examples) // 4)
    page.gallery = gr.Gallery(
        value=list(examples), label="Examples", show_label=False, columns=4, rows=rows,
        height=20 + 110 * min(rows, 2), allow_preview=False, elem_id="pw-examples",
        **_kw(gr.Gallery.__init__, object_fit="cover", buttons=[], show_download_button=False,
              show_share_button=False, show_fullscreen_button=False),
    )
    gr.Markdown("Examples: built-in synthetic scenes; click one to segment it.", elem_classes=["pw-caption"])


def _inference_options(gr, page: _Page, first: ServedModel, proposal_choices: list[str], crf_ok: bool) -> None:
    """The "Inference options" accordion: tiling, TTA, proposals, top-k, exact tiling, dense CRF."""
    with gr.Accordion("Inference options", open=True):
        with gr.Row():
            page.tile = gr.Dropdown(choices=list(TILE_CHOICES), value="off", label="Tiling (tile px)",
                                    elem_id="pw-tile", min_width=120)
            page.tta = gr.Dropdown(choices=list(inference.TTA_CHOICES), value="none",
                                   label="Test-time augmentation", elem_id="pw-tta", min_width=120)
        with gr.Row():
            page.proposals = gr.Dropdown(
                choices=proposal_choices, value=proposal_choices[0], label="Proposals (DeconvNet)",
                interactive=first.uses_proposals, elem_id="pw-proposals", min_width=120,
            )
            page.top_k = gr.Slider(1, 100, step=1, value=first.proposal_defaults.get("top_k") or 50,
                                   label="Top-k boxes", interactive=first.uses_proposals,
                                   elem_id="pw-topk", min_width=120)
        with gr.Row():
            page.context = gr.Checkbox(value=False, label="Exact tiling (224 px context)", min_width=120)
            page.crf = gr.Checkbox(value=False, interactive=crf_ok, elem_id="pw-crf", min_width=120,
                                   label="Dense CRF" if crf_ok else "Dense CRF (needs pixelwise[crf])")


def _input_column(gr, page: _Page, by_label: dict[str, ServedModel], first: ServedModel, examples: list[str],
                  max_megapixels: float, max_megabytes: float) -> None:
    """The left column: upload, examples, model, the Segment button and the inference options."""
    from pixelwise.inference.crf import crf_available
    from pixelwise.inference.proposals import selective_search_available

    proposal_choices = [c for c in inference.PROPOSAL_CHOICES
                        if c != "selective-search" or selective_search_available()]
    with gr.Column(scale=3, min_width=360):
        _upload_and_examples(gr, page, examples, max_megapixels, max_megabytes)
        page.model = gr.Dropdown(choices=list(by_label), value=first.label, label="Model", elem_id="pw-model")
        page.run = gr.Button("Segment", variant="primary", elem_id="pw-run")
        _inference_options(gr, page, first, proposal_choices, crf_available())


def _output_column(gr, page: _Page) -> None:
    """The right column: overlay and colour mask, opacity and boxes, legend, status, summary, download."""
    with gr.Column(scale=5, min_width=480):
        with gr.Row():
            page.overlay_view = gr.Image(label="Overlay", type="numpy", interactive=False, height=380,
                                         elem_id="pw-overlay", **_kw(gr.Image.__init__, format="png"))
            page.mask_view = gr.Image(label="Colour mask", type="numpy", interactive=False, height=380,
                                      elem_id="pw-mask", **_kw(gr.Image.__init__, format="png"))
        with gr.Row():
            page.alpha = gr.Slider(0.0, 1.0, value=0.5, step=0.05, label="Overlay opacity", elem_id="pw-alpha")
            page.show_boxes = gr.Checkbox(value=True, label="Show proposal boxes", elem_id="pw-boxes")
        with gr.Row(equal_height=False):
            with gr.Column(scale=3):
                page.legend = gr.HTML(inference.legend_html([]), elem_id="pw-legend-box")
            with gr.Column(scale=2):
                page.status = gr.Textbox(label="Status", value=READY, lines=2, max_lines=4, interactive=False,
                                         elem_id="pw-status")
                page.summary = gr.Markdown("", elem_id="pw-summary")
                page.download = gr.File(label="Mask (index PNG: pixel value = class index)", interactive=False,
                                        elem_id="pw-download")


@dataclass
class _Requests:
    """What the page's events run. The gradio callbacks keep their parameters unannotated (gradio
    reads annotations to inject event data) and their names (they name the page's API endpoints)."""

    gr: Any
    by_label: dict[str, ServedModel]
    first: ServedModel
    workdir: Path
    max_megapixels: float
    max_megabytes: float

    def load(self, path) -> np.ndarray:
        """Return the upload at ``path`` as an RGB image, within the page's limits."""
        return inference.load_upload(path, max_megapixels=self.max_megapixels, max_megabytes=self.max_megabytes)

    def failure(self, message: str) -> tuple:
        """Show ``message`` as a warning toast and in the status box; clear the views."""
        self.gr.Warning(message)
        return None, None, inference.legend_html([]), "", None, message, None

    def segment_request(self, path, label, tile_choice, exact, tta_choice, proposal_choice, k, use_crf, opacity,
                        boxes_on):
        start = time.perf_counter()
        try:
            entry = self.by_label.get(label)
            if entry is None:
                raise PixelwiseError(f"unknown model {label!r}")
            image = self.load(path)
            options = inference.ServeOptions(
                tile=None if tile_choice in (None, "off") else int(tile_choice),
                tile_context=224 if exact else 0, tta=tta_choice or "none",
                proposals=proposal_choice or "none", top_k=int(k) if k else None, crf=bool(use_crf),
            )
            seg = inference.segment_image(entry, image, options)
            name = inference.upload_name(path)
            shown = seg.boxes if boxes_on else None
            scale = inference.display_scale(image.shape)
            views = (inference.render_overlay(image, seg.mask, opacity, shown, scale, seg.palette),
                     inference.colour_mask(seg.mask, scale, seg.palette))
            rows = inference.legend_rows(seg.mask, seg.class_names, seg.palette)
            mask_file = inference.save_mask_png(seg.mask, self.workdir, name, seg.palette)
        except PixelwiseError as exc:
            return self.failure(str(exc))
        except Exception as exc:  # never a traceback in the page; the log has it
            log.exception("pixelwise serve: request failed")
            return self.failure(f"internal error ({type(exc).__name__}): {str(exc).strip()[:200]}")
        total = time.perf_counter() - start
        found = ", ".join(f"{r['name']} {100 * r['share']:.1f} %" for r in rows)
        message = f"{name}: segmented in {seg.seconds:.2f} s: {found}"
        kept = {"image": image, "mask": seg.mask, "boxes": seg.boxes, "palette": seg.palette}
        return (*views, inference.legend_html(rows), inference.summary_markdown(entry, seg, total), str(mask_file),
                message, kept)

    def redraw(self, kept, opacity, boxes_on):
        if not kept:
            return self.gr.update()
        image = kept["image"]
        return inference.render_overlay(image, kept["mask"], opacity, kept["boxes"] if boxes_on else None,
                                        inference.display_scale(image.shape), kept.get("palette"))

    def preview(self, path):
        """Show an upload as soon as it arrives; a bad one is refused (and removed) at once."""
        if path is None:
            return None, None, inference.legend_html([]), "", None, READY, None, self.gr.update()
        try:
            image = self.load(path)
        except PixelwiseError as exc:
            return (*self.failure(str(exc)), None)
        height, width = image.shape[:2]
        ready = f"{inference.upload_name(path)}: {width}x{height} image, ready: press Segment"
        scale = inference.display_scale(image.shape)
        shown = inference.render_overlay(image, np.zeros(image.shape[:2], np.uint8), 0.0, None, scale)
        return shown, None, inference.legend_html([]), "", None, ready, None, self.gr.update()

    def model_changed(self, label):
        entry = self.by_label.get(label, self.first)
        on = entry.uses_proposals
        return (self.gr.update(interactive=on),
                self.gr.update(interactive=on, value=entry.proposal_defaults.get("top_k") or 50))


def _wire_events(gr, page: _Page, requests: _Requests, examples: list[str], concurrency: int) -> None:
    """Connect the components to the requests: Segment, upload and clear, model change, opacity and
    boxes, and a click on an example (which segments it). Segment requests share one concurrency
    limit (``concurrency`` at once; the others queue)."""
    heavy = _kw(page.run.click, concurrency_limit=concurrency, concurrency_id="segment")
    page.run.click(requests.segment_request, page.inputs, page.results, **heavy)
    page.upload.upload(requests.preview, [page.upload], [*page.results, page.upload])
    page.upload.clear(requests.preview, [page.upload], [*page.results, page.upload])
    page.model.change(requests.model_changed, [page.model], [page.proposals, page.top_k])
    redraw_inputs = [page.state, page.alpha, page.show_boxes]
    getattr(page.alpha, "release", page.alpha.change)(requests.redraw, redraw_inputs, [page.overlay_view])
    page.show_boxes.change(requests.redraw, redraw_inputs, [page.overlay_view])
    if examples:
        def pick(evt):
            return examples[evt.index]

        pick.__annotations__ = {"evt": gr.SelectData}  # a real class: this module's annotations are strings

        page.gallery.select(pick, None, [page.upload]).then(requests.segment_request, page.inputs, page.results,
                                                           **heavy)


def build_app(
    models: Sequence[ServedModel],
    *,
    workdir: str | Path,
    examples: Sequence[str | Path] = (),
    max_megapixels: float = MAX_MEGAPIXELS,
    max_megabytes: float = MAX_MEGABYTES,
    concurrency: int = CONCURRENCY,
    queue_size: int = QUEUE_SIZE,
):
    """Return the gradio ``Blocks`` of the page for ``models`` (at least one). Masks to download
    are written under ``workdir``; ``examples`` are image files offered as example scenes.

    Under load: at most ``concurrency`` segment requests run at once and at most ``queue_size``
    wait (one more gets gradio's one-line "queue is full"); a page's kept result expires after
    :data:`STATE_SECONDS`, gradio's temporary files after :data:`CACHE_CLEANUP`, and only the
    newest masks to download are kept (:data:`pixelwise.serve.inference.KEPT_MASKS`): memory
    and disk stay bounded however many requests come."""
    gr = _gradio()
    if not models:
        raise PixelwiseError("no models to serve")
    if concurrency < 1 or queue_size < 1:
        raise PixelwiseError(f"concurrency and queue size must be >= 1, got {concurrency} and {queue_size}")
    by_label = {m.label: m for m in models}
    examples = [str(p) for p in examples]
    requests = _Requests(gr, by_label, models[0], Path(workdir), max_megapixels, max_megabytes)
    page = _Page()
    style = {} if _style_goes_to_launch(gr) else {"css": CSS, "theme": _theme(gr)}
    blocks = _kw(gr.Blocks.__init__, title=TITLE, analytics_enabled=False, delete_cache=CACHE_CLEANUP, **style)
    with gr.Blocks(**blocks) as app:
        gr.Markdown(_header(models), elem_id="pw-header")
        page.state = gr.State(None, **_kw(gr.State.__init__, time_to_live=STATE_SECONDS))
        with gr.Row(equal_height=False):
            _input_column(gr, page, by_label, models[0], examples, max_megapixels, max_megabytes)
            _output_column(gr, page)
        _wire_events(gr, page, requests, examples, concurrency)
    app.queue(max_size=queue_size, **_kw(app.queue, default_concurrency_limit=LIGHT_CONCURRENCY))
    return app


def launch(app, *, host: str = "127.0.0.1", port: int = 7860, allowed_paths: Sequence[str | Path] = (),
           max_megabytes: float = MAX_MEGABYTES) -> str:
    """Start serving ``app`` on ``host:port`` in a background thread; return its URL. Uploads over
    four times ``max_megabytes`` are refused by gradio itself (the page checks the real limit and
    says so); ``app.block_thread()`` then waits until Ctrl-C, ``app.close()`` stops it."""
    gr = _gradio()
    style = {"css": CSS, "theme": _theme(gr)} if _style_goes_to_launch(gr) else {}
    kwargs = _kw(
        app.launch, server_name=host, server_port=port, prevent_thread_lock=True, quiet=True, show_error=False,
        inbrowser=False, share=False, allowed_paths=[str(p) for p in allowed_paths],
        max_file_size=int(4 * max_megabytes * 1e6), **style,
    )
    try:
        app.launch(**kwargs)
    except OSError as exc:
        text = first_line(exc, limit=None)
        if "empty port" in text or "in use" in text:
            text = "the port is in use; choose another with --port"
        raise PixelwiseError(f"cannot serve on {host}:{port}: {text}") from None
    shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    return f"http://{shown}:{port}/"


def write_examples(folder: str | Path, *, count: int = 6, size: int = 96, num_classes: int = 4,
                   seed: int = 0) -> list[Path]:
    """Write ``count`` built-in synthetic validation scenes (``size`` px) as PNGs into ``folder``;
    return their paths."""
    from pixelwise.data import build_dataset
    from pixelwise.data.io import write_image

    if count <= 0:
        return []
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    data = build_dataset("synthetic", split="val", length=count, size=size, num_classes=num_classes, seed=seed)
    paths = []
    for i in range(count):
        path = folder / f"scene_{i + 1}.png"
        write_image(path, np.asarray(data[i]["image"]))
        paths.append(path)
    return paths
