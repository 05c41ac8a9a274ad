"""Sliding-window inference: run a model on overlapping tiles and blend their scores.

For images too large to run whole. Tiles start at multiples of ``align`` (32, the models' output
stride): FCN and DeconvNet are translation-equivariant only for shifts by whole multiples of their
stride, so an aligned tile sees the same sampling grid as the whole image and its interior scores
equal the whole-image scores exactly. Scores near a tile edge differ from the whole-image ones (the
network sees zero padding there instead of the neighbouring pixels); two things limit that:

- the ``linear`` window gives each tile a weight that ramps from ~0 at an interior tile edge to 1
  over the overlap, so every pixel is dominated by the tile in which it lies deepest;
- ``context`` runs each tile with that many extra pixels of real image around it (and drops their
  scores), the overlap-tile strategy: when ``context`` is at least the receptive-field radius the
  blend equals whole-image inference up to float rounding (tested for FCN-8s).
"""

from __future__ import annotations

from typing import Callable

import torch

from pixelwise.errors import PixelwiseError

WINDOWS = ("linear", "uniform")
DEFAULT_ALIGN = 32


def _pair(tile: int | tuple[int, int]) -> tuple[int, int]:
    if isinstance(tile, int):
        return tile, tile
    return int(tile[0]), int(tile[1])


def tile_spans(length: int, tile: int, overlap: float, align: int = DEFAULT_ALIGN) -> list[tuple[int, int]]:
    """Return the ``[start, end)`` spans of the tiles along one axis of ``length`` pixels.

    Starts are multiples of ``align``; the step is ``tile * (1 - overlap)`` rounded down to a
    multiple of ``align`` (at least ``align``). Every span has ``tile`` pixels except the last,
    which ends at ``length`` and may be up to ``align - 1`` pixels longer (so that it starts on the
    grid). One span ``[0, length)`` when the tile covers the axis.
    """
    if tile >= length:
        return [(0, length)]
    step = max(align, int(tile * (1.0 - overlap)) // align * align)
    starts = list(range(0, length - tile, step))
    last = (length - tile) // align * align
    if last > starts[-1]:
        starts.append(last)
    spans = [(s, min(s + tile, length)) for s in starts]
    spans[-1] = (spans[-1][0], length)
    return spans


def _ramp_1d(start: int, end: int, length: int, ramp: int, device: torch.device) -> torch.Tensor:
    """Weights over ``[start, end)``: rising over ``ramp`` pixels from an interior start, falling
    to an interior end, flat (1) towards the image border."""
    n = end - start
    w = torch.ones(n, device=device)
    ramp = max(1, min(ramp, n))
    # (i + 0.5) / ramp: the first interior pixel gets a small but non-zero weight
    rise = (torch.arange(n, device=device, dtype=torch.float32) + 0.5) / ramp
    if start > 0:
        w = torch.minimum(w, rise)
    if end < length:
        w = torch.minimum(w, rise.flip(0))
    return w


def sliding_window(
    forward: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    *,
    tile: int | tuple[int, int],
    overlap: float = 0.33,
    window: str = "linear",
    context: int = 0,
    align: int = DEFAULT_ALIGN,
    progress: bool = False,
) -> torch.Tensor:
    """Run ``forward`` on overlapping tiles of ``x`` and blend: returns ``(N, C, H, W)`` scores.

    ``forward`` maps ``(N, 3, h, w)`` to ``(N, C, h, w)`` scores for any ``h, w`` it is given (a
    model's ``forward_any_size``). ``tile`` is the tile side (or ``(h, w)``),
    ``overlap`` the fraction of a tile shared with its neighbour (0 <= overlap < 1), ``window``
    ``linear`` (ramp over the overlap) or ``uniform`` (plain average), ``context`` extra pixels of
    image fed around every tile (rounded up to a multiple of ``align``) whose scores are dropped.
    The scores of overlapping tiles are averaged with the window as weights.
    """
    th, tw = _pair(tile)
    if min(th, tw) < align:
        # a step is at least one stride (align); smaller tiles would leave gaps between them
        raise PixelwiseError(f"--tile must be at least {align} pixels (the output stride), got {tile}")
    if not 0.0 <= overlap < 1.0:
        raise PixelwiseError(f"--overlap must be in [0, 1), got {overlap}")
    if window not in WINDOWS:
        raise PixelwiseError(f"unknown window {window!r}; valid: {', '.join(WINDOWS)}")
    if context < 0:
        raise PixelwiseError(f"--tile-context must be >= 0, got {context}")
    context = -(-context // align) * align
    height, width = x.shape[-2:]
    rows = tile_spans(height, th, overlap, align)
    cols = tile_spans(width, tw, overlap, align)
    ramp_h = max(1, th - max(align, int(th * (1.0 - overlap)) // align * align))
    ramp_w = max(1, tw - max(align, int(tw * (1.0 - overlap)) // align * align))
    acc = None
    weight_sum = torch.zeros(height, width, device=x.device)
    tiles = [(r, c) for r in rows for c in cols]
    bar = None
    if progress and len(tiles) > 1:
        from tqdm import tqdm

        bar = tqdm(total=len(tiles), desc="tiles", unit="tile", leave=False, disable=None)
    for (y0, y1), (x0, x1) in tiles:
        # the input region: the tile plus context, clipped to the image (starts stay aligned)
        iy0, ix0 = max(0, y0 - context), max(0, x0 - context)
        iy1, ix1 = min(height, y1 + context), min(width, x1 + context)
        out = forward(x[..., iy0:iy1, ix0:ix1])
        out = out[..., y0 - iy0 : y1 - iy0, x0 - ix0 : x1 - ix0].float()
        if window == "uniform":
            w = torch.ones(y1 - y0, x1 - x0, device=x.device)
        else:
            w = _ramp_1d(y0, y1, height, ramp_h, x.device)[:, None] * _ramp_1d(x0, x1, width, ramp_w, x.device)[None, :]
        if acc is None:
            acc = torch.zeros(*out.shape[:2], height, width, device=x.device)
        if len(tiles) == 1:
            acc = out  # a single tile is returned untouched (bit-exact whole-image inference)
        else:
            acc[..., y0:y1, x0:x1] += out * w
        weight_sum[y0:y1, x0:x1] += w
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    if len(tiles) == 1:
        return acc
    return acc / weight_sum
