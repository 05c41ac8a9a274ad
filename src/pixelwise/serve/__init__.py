"""``pixelwise serve``: a browser app for trying the models on your own images.

- :mod:`pixelwise.serve.models` finds and loads the models to serve (checkpoints, an EDeconvNet
  from an FCN-8s + DeconvNet pair, or what ``pixelwise demo`` trained);
- :mod:`pixelwise.serve.inference` holds the work behind the page as plain functions (upload ->
  image, image -> mask, overlay, legend, proposal boxes, time), testable without a browser;
- :mod:`pixelwise.serve.app` builds the gradio page from those (gradio is imported only there:
  ``pip install 'pixelwise[serve]'``).
"""

from pixelwise.serve.inference import (
    MAX_MEGABYTES,
    MAX_MEGAPIXELS,
    ServeOptions,
    legend_html,
    legend_rows,
    load_upload,
    render_overlay,
    save_mask_png,
    segment_image,
)
from pixelwise.serve.models import ServedModel, find_demo_checkpoints, load_served_models

__all__ = [
    "MAX_MEGABYTES",
    "MAX_MEGAPIXELS",
    "ServeOptions",
    "ServedModel",
    "find_demo_checkpoints",
    "legend_html",
    "legend_rows",
    "load_served_models",
    "load_upload",
    "render_overlay",
    "save_mask_png",
    "segment_image",
]
