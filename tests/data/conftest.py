"""Fixtures for the data tests: factories writing datasets into the test's tmp dir."""

from __future__ import annotations

import pytest
from data_fixtures import build_folder, build_sbd, build_voc


@pytest.fixture
def make_voc(tmp_path):
    """Factory: ``make_voc(broken=False)`` -> VOC2012 root (tmp/VOCdevkit/VOC2012)."""
    return lambda broken=False: build_voc(tmp_path, broken)


@pytest.fixture
def make_sbd(tmp_path):
    """Factory: ``make_sbd(broken=False)`` -> SBD root (tmp/benchmark_RELEASE/dataset)."""
    return lambda broken=False: build_sbd(tmp_path, broken)


@pytest.fixture
def make_folder(tmp_path):
    """Factory: ``make_folder(broken=False, classes=True)`` -> folder dataset root (tmp/myset)."""
    return lambda broken=False, classes=True: build_folder(tmp_path, broken, classes)
