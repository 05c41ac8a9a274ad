"""Shared test settings: small thread counts and deterministic seeds keep the suite fast on 2 cores."""

import numpy as np
import pytest
import torch

torch.set_num_threads(2)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    np.random.seed(0)
