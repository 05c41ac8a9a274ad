"""Fully connected CRF post-processing (Kraehenbuehl and Koltun 2011) with DeconvNet's settings.

Uses ``pydensecrf2`` (imported as ``pydensecrf.densecrf``), an optional extra:
``pip install 'pixelwise[crf]'``. The parameters are the released EDeconvNet+CRF ones: 10
mean-field iterations, a Gaussian (smoothness) kernel with ``sxy=3`` and weight 3, and a bilateral
(appearance) kernel with ``sxy=20``, ``srgb=3`` and weight 5; the unary is ``-log`` of the
ensemble probabilities.

Two presets (:data:`CRF_PRESETS`) say how the library is driven:

``release`` (the default)
    What the authors' release runs. ``inference/generate_EDeconvNet_CRF_results.m`` calls the
    meanfield-matlab wrapper (``Densecrf.m`` / ``densecrf_mex.cpp``), which builds Krähenbühl's
    ``DenseCRF2D`` with ``NormalizationType = 'NO_NORMALIZATION'`` (the wrapper's default; the
    script never changes it), ``CONST_KERNEL`` and ``PottsCompatibility(weight)`` for both kernels,
    and takes the argmax of ``inference(iterations)``. The same C++ code is inside pydensecrf2, so
    this preset passes the same settings. The unary is ``-log(p)`` computed in float64 and then
    rounded to float32 (the script's ``single(-log(prob_map))``), with no cap. A probability of
    exactly 0 (which would be an infinite unary) is replaced by the smallest positive number of the
    input's floating type (2**-149 for float32, giving a unary of about 103.3; 5e-324 for float64,
    about 744.4): the smallest unary consistent with the input having rounded to zero, and finite.
    The pixels are laid out as the MATLAB wrapper lays them out (column-major: the lattice's first
    position feature is the row, the second the column). The permutohedral lattice is not
    symmetric in its features, so this changes the marginals, not only the memory order.
``pydensecrf``
    pixelwise's behaviour before the ``release`` preset: pydensecrf2's own defaults
    (``NORMALIZE_SYMMETRIC``, ``DIAG_KERNEL``), the unary ``-log(clip(p, 1e-8, 1))`` in float32
    (capped at about 18.4), row-major layout.

The kernel type (constant or diagonal) only matters for learning the kernel parameters; inference
builds the same lattice either way. The normalisation is what changes the result: without it each
pixel's message is the plain Gaussian-weighted sum over all pixels (itself included), so the
pairwise terms are much stronger than with symmetric normalisation, which divides them by the
kernels' row sums.
"""

from __future__ import annotations

import numpy as np

from pixelwise.errors import PixelwiseError

#: How each preset drives pydensecrf2: normalisation and kernel type (names of pydensecrf
#: constants), how the unary is computed, and the pixel layout handed to the library.
CRF_PRESETS: dict[str, dict[str, str]] = {
    "release": {
        "normalization": "NO_NORMALIZATION",
        "kernel": "CONST_KERNEL",
        "unary": "float64",  # -log(p) in float64, zeros -> smallest positive, cast to float32
        "layout": "column-major",  # as the MATLAB wrapper: DenseCRF2D(rows, cols)
    },
    "pydensecrf": {
        "normalization": "NORMALIZE_SYMMETRIC",
        "kernel": "DIAG_KERNEL",
        "unary": "clip",  # -log(clip(p, 1e-8, 1)) in float32
        "layout": "row-major",  # DenseCRF2D(width, height)
    },
}

#: The preset used when none is named (``--crf-preset``'s default).
DEFAULT_CRF_PRESET = "release"

CRF_DEFAULTS = {
    "iterations": 10,
    "gaussian_sxy": 3.0,
    "gaussian_weight": 3.0,
    "bilateral_sxy": 20.0,
    "bilateral_srgb": 3.0,
    "bilateral_weight": 5.0,
    "preset": DEFAULT_CRF_PRESET,
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


def crf_unary(probs: np.ndarray, preset: str = DEFAULT_CRF_PRESET) -> np.ndarray:
    """The unary energy ``(C, H, W)`` float32 that ``preset`` feeds the CRF for ``probs``."""
    if CRF_PRESETS[preset]["unary"] == "clip":
        return -np.log(np.clip(np.asarray(probs, dtype=np.float32), 1e-8, 1.0))
    p = np.asarray(probs)
    if not np.issubdtype(p.dtype, np.floating):
        p = p.astype(np.float64)
    tiny = np.nextafter(p.dtype.type(0), p.dtype.type(1))  # smallest positive value of p's type
    p = np.where(p > 0, p, tiny).astype(np.float64)
    return (-np.log(p)).astype(np.float32)


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
    preset: str = DEFAULT_CRF_PRESET,
) -> np.ndarray:
    """Refine ``probs`` ``(C, H, W)`` for the ``(H, W, 3)`` uint8 RGB ``image`` with a dense CRF.

    ``preset`` is ``"release"`` (the authors' MATLAB wrapper: no normalisation, float64 unary) or
    ``"pydensecrf"`` (pydensecrf2's defaults: symmetric normalisation, unary capped at 18.4); see
    the module docstring. Returns the CRF's marginals, ``(C, H, W)`` float32 summing to 1 over
    classes.
    """
    if preset not in CRF_PRESETS:
        raise PixelwiseError(f"unknown CRF preset {preset!r}; valid: {', '.join(CRF_PRESETS)}")
    dcrf = _densecrf()
    image = np.asarray(image)
    probs = np.asarray(probs)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise PixelwiseError(f"dense CRF needs an (H, W, 3) uint8 RGB image, got {image.shape} {image.dtype}")
    if probs.ndim != 3 or probs.shape[1:] != image.shape[:2]:
        raise PixelwiseError(f"dense CRF: probabilities {probs.shape} do not match image {image.shape[:2]}")
    if iterations < 1:
        raise PixelwiseError(f"CRF iterations must be >= 1, got {iterations}")
    if np.isnan(probs).any() or (probs < 0).any():
        raise PixelwiseError("dense CRF: probabilities must be >= 0 and not NaN")
    settings = CRF_PRESETS[preset]
    kernel = getattr(dcrf, settings["kernel"])
    normalization = getattr(dcrf, settings["normalization"])
    unary = crf_unary(probs, preset)
    num_classes, height, width = unary.shape
    column_major = settings["layout"] == "column-major"
    if column_major:
        # the wrapper's DenseCRF2D(M, N) with M = rows: pixel (row, col) is index row + col * rows
        unary = unary.transpose(0, 2, 1)
        image = image.transpose(1, 0, 2)
    lattice_w, lattice_h = unary.shape[2], unary.shape[1]
    crf = dcrf.DenseCRF2D(lattice_w, lattice_h, num_classes)
    crf.setUnaryEnergy(np.ascontiguousarray(unary.reshape(num_classes, -1), dtype=np.float32))
    crf.addPairwiseGaussian(sxy=gaussian_sxy, compat=gaussian_weight, kernel=kernel, normalization=normalization)
    crf.addPairwiseBilateral(
        sxy=bilateral_sxy, srgb=bilateral_srgb, rgbim=np.ascontiguousarray(image), compat=bilateral_weight,
        kernel=kernel, normalization=normalization,
    )
    q = np.asarray(crf.inference(int(iterations)), dtype=np.float32).reshape(num_classes, lattice_h, lattice_w)
    if column_major:
        q = q.transpose(0, 2, 1)
    return np.ascontiguousarray(q)
