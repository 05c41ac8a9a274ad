"""Shared test settings: small thread counts and deterministic seeds keep the suite fast on 2 cores."""

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
    """Pretrained backbones go to a cache folder of this test session, never the user's."""
    mp = pytest.MonkeyPatch()
    mp.setenv("PIXELWISE_CACHE", str(tmp_path_factory.mktemp("pixelwise-cache")))
    yield
    mp.undo()
