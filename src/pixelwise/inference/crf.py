"""Fully connected CRF post-processing (Kraehenbuehl and Koltun 2011) with DeconvNet's settings.

Uses ``pydensecrf2`` (imported as ``pydensecrf.densecrf``), an optional extra:
``pip install 'pixelwise[crf]'``. The defaults are the released EDeconvNet+CRF parameters: 10
mean-field iterations, a Gaussian (smoothness) kernel with ``sxy=3`` and weight 3, and a bilateral
(appearance) kernel with ``sxy=20``, ``srgb=3`` and weight 5; the unary is ``-log`` of the
ensemble probabilities.
"""

from __future__ import annotations

import numpy as np

from pixelwise.errors import PixelwiseError

CRF_DEFAULTS = {
    "iterations": 10,
    "gaussian_sxy": 3.0,
    "gaussian_weight": 3.0,
    "bilateral_sxy": 20.0,
    "bilateral_srgb": 3.0,
    "bilateral_weight": 5.0,
}


def crf_available() -> bool:
    """Return True when pydensecrf2 can be imported."""
    try:
        import pydensecrf.densecrf  # noqa: F401
    except ImportError:
        return False
    return True


def _densecrf():
    try:
        import pydensecrf.densecrf as dcrf
    except ImportError:
        raise PixelwiseError(
            "--crf needs the optional dense CRF extra: pip install 'pixelwise[crf]' (pydensecrf2)"
        ) from None
    return dcrf


def dense_crf(
    image: np.ndarray,
    probs: np.ndarray,
    *,
    iterations: int = 10,
    gaussian_sxy: float = 3.0,
    gaussian_weight: float = 3.0,
    bilateral_sxy: float = 20.0,
    bilateral_srgb: float = 3.0,
    bilateral_weight: float = 5.0,
) -> np.ndarray:
    """Refine ``probs`` ``(C, H, W)`` for the ``(H, W, 3)`` uint8 RGB ``image`` with a dense CRF.

    Returns the CRF's marginals, ``(C, H, W)`` float32 summing to 1 over classes.
    """
    dcrf = _densecrf()
    image = np.asarray(image)
    probs = np.asarray(probs, dtype=np.float32)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise PixelwiseError(f"dense CRF needs an (H, W, 3) uint8 RGB image, got {image.shape} {image.dtype}")
    if probs.ndim != 3 or probs.shape[1:] != image.shape[:2]:
        raise PixelwiseError(f"dense CRF: probabilities {probs.shape} do not match image {image.shape[:2]}")
    if iterations < 1:
        raise PixelwiseError(f"CRF iterations must be >= 1, got {iterations}")
    num_classes, height, width = probs.shape
    crf = dcrf.DenseCRF2D(width, height, num_classes)
    # unary energy = -log(p), clamped so that a zero probability stays finite
    unary = -np.log(np.clip(probs, 1e-8, 1.0)).reshape(num_classes, -1)
    crf.setUnaryEnergy(np.ascontiguousarray(unary, dtype=np.float32))
    crf.addPairwiseGaussian(sxy=gaussian_sxy, compat=gaussian_weight)
    crf.addPairwiseBilateral(
        sxy=bilateral_sxy, srgb=bilateral_srgb, rgbim=np.ascontiguousarray(image), compat=bilateral_weight
    )
    q = np.asarray(crf.inference(int(iterations)), dtype=np.float32)
    return q.reshape(num_classes, height, width)
