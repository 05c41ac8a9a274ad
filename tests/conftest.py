"""Shared test settings (small thread counts and deterministic seeds keep the suite fast on 2 cores)
and the tiny models of the command-line and serve tests."""

import numpy as np
import pytest
import torch

torch.set_num_threads(2)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    np.random.seed(0)


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory):
    """Pretrained backbones go to a cache folder of this test session, never the user's. The engine
    cache is off (so ``auto`` does not depend on which test ran first); tests/fast turn it on."""
    mp = pytest.MonkeyPatch()
    mp.setenv("PIXELWISE_CACHE", str(tmp_path_factory.mktemp("pixelwise-cache")))
    mp.setenv("PIXELWISE_ENGINE_CACHE", "0")
    yield
    mp.undo()


TINY_WIDTH = 0.03125
"""Width multiplier of the tiny test models (1/32 of the paper's channels)."""


def make_tiny_model(name: str, **kwargs) -> torch.nn.Module:
    """A width-1/32, 4-class model (the synthetic scenes' classes) with random scorers, so that its
    masks hold several classes; ``kwargs`` go to :func:`pixelwise.create_model`."""
    import pixelwise

    model = pixelwise.create_model(name, num_classes=4, width=TINY_WIDTH, **kwargs)
    for layer in ("score_fr", "score_pool4", "score_pool3"):
        if hasattr(model, layer):  # FCN scorers start at zero; make the output vary
            torch.nn.init.normal_(getattr(model, layer).weight, std=0.3)
    if hasattr(model, "seg_score"):
        torch.nn.init.normal_(model.seg_score.weight, std=2.0)
    return model


@pytest.fixture(scope="session")
def tiny_model():
    """:func:`make_tiny_model`, for fixtures that save tiny checkpoints."""
    return make_tiny_model
