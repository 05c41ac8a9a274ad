"""pixelwise.runtime: which CPUs count as having native bf16."""

import pytest
import torch

from pixelwise import runtime


def _onednn_says_bf16() -> bool:
    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


@pytest.mark.skipif(not _onednn_says_bf16(), reason="oneDNN has no bf16 path on this CPU at all")
@pytest.mark.parametrize(("flags", "native"), [
    ({"avx512f", "avx512bw", "avx512_vnni"}, False),  # plain AVX-512: oneDNN emulates bf16 (slower than fp32)
    ({"avx512f", "avx512_bf16"}, True),
    ({"avx512f", "amx_bf16", "amx_tile"}, True),
])
def test_native_bf16_needs_the_x86_flags(monkeypatch, flags, native):
    monkeypatch.setattr(runtime.platform, "machine", lambda: "x86_64")
    monkeypatch.setattr(runtime, "cpu_flags", lambda: flags)
    assert runtime.cpu_supports_bf16() is native


@pytest.mark.skipif(not _onednn_says_bf16(), reason="oneDNN has no bf16 path on this CPU at all")
def test_other_machines_trust_onednn(monkeypatch):
    monkeypatch.setattr(runtime.platform, "machine", lambda: "aarch64")
    monkeypatch.setattr(runtime, "cpu_flags", lambda: set())
    assert runtime.cpu_supports_bf16() is True
