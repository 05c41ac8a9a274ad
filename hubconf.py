"""torch.hub entry points of pixelwise, e.g.
``torch.hub.load("<owner>/pixelwise", "fcn8s", weights="voc-fcn8s")``; the builders live in
``src/pixelwise/hub.py``."""

import sys as _sys
from pathlib import Path as _Path

dependencies = ["torch", "numpy", "scipy", "PIL", "yaml", "tqdm"]

_sys.path.insert(0, str(_Path(__file__).resolve().parent / "src"))

from pixelwise.hub import deconvnet, edeconvnet, fcn8s, fcn8s_atonce, fcn16s, fcn32s  # noqa: E402,F401
