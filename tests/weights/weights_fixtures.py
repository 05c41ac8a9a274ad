"""Random weights in the release layouts, and reference forward passes written directly with
``torch.nn.functional`` from the blob dicts (not through pixelwise's models).

The crop offsets in :func:`ref_fcn` are the FCN release's numbers (DESIGN.md): 19 (32s); 5, 27
(16s); 5, 9, 31 (8s), so the reference does not reuse pixelwise's geometry code.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

STAGES = ((64, 2), (128, 2), (256, 3), (512, 3), (512, 3))
DECODER = ((5, (512, 512, 512)), (4, (512, 512, 256)), (3, (256, 256, 128)), (2, (128, 64)), (1, (64, 64)))
RELEASE_CROPS = {"fcn32s": {"upscore": 19}, "fcn16s": {"score_pool4": 5, "upscore16": 27},
                 "fcn8s": {"score_pool4": 5, "score_pool3": 9, "upscore8": 31}}


def ch(base: int, width: float) -> int:
    return max(1, int(round(base * width)))


def conv_names() -> list[str]:
    return [f"conv{s}_{j}" for s, (_, reps) in enumerate(STAGES, 1) for j in range(1, reps + 1)]


def _he(rng, shape, fan_in):
    return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)


def vgg_blobs(width: float, rng: np.random.Generator, *, fc_as_ip: bool = False) -> dict[str, list[np.ndarray]]:
    """conv1_1..conv5_3, fc6, fc7 (as convs, or InnerProduct 2-D like the ImageNet VGG16)."""
    blobs: dict[str, list[np.ndarray]] = {}
    cin = 3
    for s, (c, reps) in enumerate(STAGES, 1):
        cout = ch(c, width)
        for j in range(1, reps + 1):
            blobs[f"conv{s}_{j}"] = [_he(rng, (cout, cin, 3, 3), cin * 9), (rng.standard_normal(cout) * 0.1).astype(np.float32)]
            cin = cout
    fc = ch(4096, width)
    fc6 = _he(rng, (fc, cin, 7, 7), cin * 49)
    fc7 = _he(rng, (fc, fc, 1, 1), fc)
    if fc_as_ip:
        fc6, fc7 = fc6.reshape(fc, -1), fc7.reshape(fc, fc)
    blobs["fc6"] = [fc6, (rng.standard_normal(fc) * 0.1).astype(np.float32)]
    blobs["fc7"] = [fc7, (rng.standard_normal(fc) * 0.1).astype(np.float32)]
    return blobs


def fcn_blobs(arch: str, width: float, num_classes: int, rng) -> dict[str, list[np.ndarray]]:
    """A full FCN release layout with random (non-bilinear, non-symmetric) upsampling kernels."""
    blobs = vgg_blobs(width, rng)
    c = num_classes
    fc = ch(4096, width)
    blobs["score_fr"] = [_he(rng, (c, fc, 1, 1), fc), (rng.standard_normal(c)).astype(np.float32)]
    skips = {"fcn32s": (), "fcn16s": ("pool4",), "fcn8s": ("pool4", "pool3"), "fcn8s_atonce": ("pool4", "pool3")}[arch]
    tap_ch = {"pool4": ch(512, width), "pool3": ch(256, width)}
    ups = {"pool4": "upscore2", "pool3": "upscore_pool4"}
    for tap in skips:
        blobs[f"score_{tap}"] = [_he(rng, (c, tap_ch[tap], 1, 1), tap_ch[tap]), rng.standard_normal(c).astype(np.float32)]
        blobs[ups[tap]] = [(rng.standard_normal((c, c, 4, 4)) * 0.3).astype(np.float32)]
    final = {0: ("upscore", 64), 1: ("upscore16", 32), 2: ("upscore8", 16)}[len(skips)]
    blobs[final[0]] = [(rng.standard_normal((c, c, final[1], final[1])) * 0.1).astype(np.float32)]
    if arch == "fcn8s_atonce":
        blobs["scale_pool4"] = [np.full((tap_ch["pool4"],), 0.01, np.float32)]
        blobs["scale_pool3"] = [np.full((tap_ch["pool3"],), 0.0001, np.float32)]
    return blobs


def fcn_layer_order(blobs: dict) -> list[str]:
    order = conv_names() + ["fc6", "fc7", "score_fr", "upscore", "upscore2", "scale_pool4", "score_pool4",
                            "upscore16", "upscore_pool4", "scale_pool3", "score_pool3", "upscore8"]
    return [n for n in order if n in blobs]


def caffe_type(name: str, blobs: dict) -> str:
    if name.startswith("upscore") or name.startswith("deconv") or name == "fc6-deconv":
        return "Deconvolution"
    if name.startswith("scale_pool"):
        return "Scale"
    if name in ("fc6", "fc7") and blobs[name][0].ndim == 2:
        return "InnerProduct"
    return "Convolution"


def ref_fcn(arch: str, blobs: dict, x: torch.Tensor) -> torch.Tensor:
    """The release's FCN forward, from blobs, with its published crop offsets."""
    t = {k: [torch.from_numpy(np.ascontiguousarray(b)) for b in v] for k, v in blobs.items()}
    h = x
    pools = {}
    for s, (_, reps) in enumerate(STAGES, 1):
        for j in range(1, reps + 1):
            w, b = t[f"conv{s}_{j}"]
            h = F.relu(F.conv2d(h, w, b, padding=100 if (s, j) == (1, 1) else 1))
        h = F.max_pool2d(h, 2, 2, ceil_mode=True)
        pools[f"pool{s}"] = h
    h = F.relu(F.conv2d(h, t["fc6"][0].reshape(t["fc6"][0].shape[0], -1, 7, 7), t["fc6"][1]))
    h = F.relu(F.conv2d(h, t["fc7"][0].reshape(*t["fc7"][0].shape[:2], 1, 1), t["fc7"][1]))
    score = F.conv2d(h, *t["score_fr"])
    crops = RELEASE_CROPS["fcn8s" if arch == "fcn8s_atonce" else arch]

    def skip(tap):
        feat = pools[tap]
        if f"scale_{tap}" in t:
            feat = feat * t[f"scale_{tap}"][0].reshape(1, -1, 1, 1)
        return F.conv2d(feat, *t[f"score_{tap}"])

    for tap, up in (("pool4", "upscore2"), ("pool3", "upscore_pool4")):
        if f"score_{tap}" not in t:
            break
        upped = F.conv_transpose2d(score, t[up][0], stride=2)
        o = crops[f"score_{tap}"]
        sk = skip(tap)[..., o : o + upped.shape[2], o : o + upped.shape[3]]
        score = upped + sk
    final, factor = {"fcn32s": ("upscore", 32), "fcn16s": ("upscore16", 16)}.get(arch, ("upscore8", 8))
    out = F.conv_transpose2d(score, t[final][0], stride=factor)
    o = crops[final]
    return out[..., o : o + x.shape[2], o : o + x.shape[3]]


def bn_names_release() -> list[tuple[str, str]]:
    """(conv layer, its BN layer) in the DeconvNet release."""
    pairs = [(c, "bn" + c[4:]) for c in conv_names()] + [("fc6", "bnfc6"), ("fc7", "bnfc7"), ("fc6-deconv", "fc6-deconv-bn")]
    pairs += [(f"deconv{s}_{j}", f"debn{s}_{j}") for s, widths in DECODER for j in range(1, len(widths) + 1)]
    return pairs


def deconvnet_blobs(width: float, num_classes: int, rng) -> dict[str, list[np.ndarray]]:
    """DeconvNet release layout: convs + fork BN blobs (scale, shift) of shape (1, C, 1, 1)."""
    blobs = vgg_blobs(width, rng)
    fc = ch(4096, width)
    p5 = ch(512, width)
    blobs["fc6-deconv"] = [_he(rng, (fc, p5, 7, 7), fc), (rng.standard_normal(p5) * 0.1).astype(np.float32)]
    cin = p5
    for s, widths in DECODER:
        for j, c in enumerate(widths, 1):
            cout = ch(c, width)
            blobs[f"deconv{s}_{j}"] = [_he(rng, (cin, cout, 3, 3), cin * 9), (rng.standard_normal(cout) * 0.1).astype(np.float32)]
            cin = cout
    blobs["seg-score-voc"] = [_he(rng, (num_classes, cin, 1, 1), cin), rng.standard_normal(num_classes).astype(np.float32)]
    for conv, bn in bn_names_release():
        c = blobs[conv][0].shape[1 if conv.startswith(("deconv", "fc6-deconv")) else 0]
        scale = rng.uniform(0.5, 1.5, (1, c, 1, 1)).astype(np.float32)
        shift = (rng.standard_normal((1, c, 1, 1)) * 0.2).astype(np.float32)
        blobs[bn] = [scale, shift]
    return blobs


def deconvnet_layer_order(blobs: dict) -> list[str]:
    order = []
    bn_of = dict(bn_names_release())
    for c in conv_names() + ["fc6", "fc7", "fc6-deconv"]:
        order += [c, bn_of[c]]
    for s, widths in DECODER:
        for j in range(1, len(widths) + 1):
            order += [f"deconv{s}_{j}", f"debn{s}_{j}"]
    return order + ["seg-score-voc"]


def bvlc_bn_from_fork(scale: np.ndarray, shift: np.ndarray, rng, *, eps: float = 1e-5):
    """Express y = scale*x + shift as BVLC BatchNorm (mean*s, var*s, s) + Scale (gamma, beta)."""
    c = scale.size
    mean = rng.standard_normal(c).astype(np.float32)
    var = rng.uniform(0.5, 2.0, c).astype(np.float32)
    gamma = scale.reshape(-1) * np.sqrt(var + eps)
    beta = shift.reshape(-1) + scale.reshape(-1) * mean
    s = np.float32(7.0)  # Caffe's moving-average factor: blobs hold sums scaled by it
    return [mean * s, var * s, np.array([s], np.float32)], [gamma.astype(np.float32), beta.astype(np.float32)]


def ref_deconvnet(blobs: dict, x: torch.Tensor) -> torch.Tensor:
    """DeconvNet inference forward (BN as y = scale * x + shift, the release's INFERENCE mode)."""
    t = {k: [torch.from_numpy(np.ascontiguousarray(b)) for b in v] for k, v in blobs.items()}
    bn_of = dict(bn_names_release())

    def bn_relu(conv, h):
        scale, shift = t[bn_of[conv]]
        return F.relu(h * scale.reshape(1, -1, 1, 1) + shift.reshape(1, -1, 1, 1))

    h = x
    switches = []
    for s, (_, reps) in enumerate(STAGES, 1):
        for j in range(1, reps + 1):
            h = bn_relu(f"conv{s}_{j}", F.conv2d(h, *t[f"conv{s}_{j}"], padding=1))
        size = h.shape[-2:]
        h, idx = F.max_pool2d(h, 2, 2, return_indices=True)
        switches.append((idx, size))
    h = bn_relu("fc6", F.conv2d(h, *t["fc6"]))
    h = bn_relu("fc7", F.conv2d(h, *t["fc7"]))
    h = bn_relu("fc6-deconv", F.conv_transpose2d(h, *t["fc6-deconv"]))
    for s, widths in DECODER:
        idx, size = switches[s - 1]
        h = F.max_unpool2d(h, idx, 2, 2, output_size=size)
        for j in range(1, len(widths) + 1):
            name = f"deconv{s}_{j}"
            h = bn_relu(name, F.conv_transpose2d(h, *t[name], padding=1))
    return F.conv2d(h, *t["seg-score-voc"])


def caffe_input(n: int, h: int, w: int, seed: int = 0) -> torch.Tensor:
    """Mean-subtracted BGR-like input at Caffe scale."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, h, w), generator=g).float() - 116.0


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    """max |a - b| / max(1, max |b|)."""
    return float((a - b).abs().max() / max(1.0, float(b.abs().max())))


def make_alive(model: torch.nn.Module, calib: torch.Tensor, seed: int = 0) -> torch.nn.Module:
    """Give ``model`` random He-scaled weights, random BN affines and BN statistics measured on
    ``calib`` (so activations neither die nor explode); returns it in eval mode."""
    from torch import nn

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for mod in model.modules():
            if isinstance(mod, (nn.Conv2d, nn.ConvTranspose2d)):
                w = mod.weight
                fan_in = w[0].numel() if isinstance(mod, nn.Conv2d) else w.shape[0] * w[0, 0].numel()
                w.copy_(torch.randn(w.shape, generator=g) * (2.0 / fan_in) ** 0.5)
                if mod.bias is not None:
                    mod.bias.copy_(torch.randn(mod.bias.shape, generator=g) * 0.1)
            elif isinstance(mod, nn.BatchNorm2d):
                mod.weight.copy_(torch.rand(mod.weight.shape, generator=g) + 0.5)
                mod.bias.copy_(torch.randn(mod.bias.shape, generator=g) * 0.1)
                mod.reset_running_stats()
                mod.momentum = None  # cumulative: one pass sets the statistics of calib
        model.train()
        model(calib)
        model.eval()
        for mod in model.modules():
            if isinstance(mod, nn.BatchNorm2d):
                mod.momentum = 0.1
    return model


def min_pool_gap(model: torch.nn.Module, x: torch.Tensor) -> float:
    """Smallest non-zero relative gap between the two largest values of any 2x2 window of the
    switch-keeping max-pools of ``model`` on ``x``. Far above float noise (~1e-6) means every engine picks the same switches."""
    from torch import nn

    gaps = []

    def hook(_mod, inp, _out):
        t = inp[0]
        n, c, h, w = t.shape
        t = t[..., : h - h % 2, : w - w % 2]
        win = t.reshape(n, c, h // 2, 2, w // 2, 2).permute(0, 1, 2, 4, 3, 5).reshape(n, c, h // 2, w // 2, 4)
        top = win.topk(2, dim=-1).values
        gap = top[..., 0] - top[..., 1]
        rel = gap / top[..., 0].abs().clamp_min(1e-30)
        gaps.append(rel[gap > 0])

    # only pools whose switches are used (DeconvNet); elsewhere a near-tie changes nothing
    pools = [m for m in model.modules() if isinstance(m, nn.MaxPool2d) and m.return_indices]
    handles = [m.register_forward_hook(hook) for m in pools]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    every = torch.cat(gaps) if gaps else torch.ones(1)
    return float(every.min()) if every.numel() else 1.0


def tv_state(width: float, bn: bool, *, device="cpu", seed=0) -> dict:
    """A state dict with torchvision's VGG16(-BN) key names, at a width multiplier."""
    g = torch.Generator().manual_seed(seed)

    def rand(*shape, scale=1.0, offset=0.0):
        if device == "meta":
            return torch.empty(shape, device="meta")
        return torch.randn(shape, generator=g) * scale + offset

    state, cin, last = {}, 3, None
    bases = iter(c for c, reps in STAGES for _ in range(reps))
    from pixelwise.weights.torchvision_vgg import torchvision_feature_layout

    for prefix, module in torchvision_feature_layout(bn):
        if module.endswith("_bn"):
            c = state[f"{last}.weight"].shape[0]
            state[f"{prefix}.weight"] = rand(c, scale=0.2, offset=1.0)
            state[f"{prefix}.bias"] = rand(c, scale=0.1)
            state[f"{prefix}.running_mean"] = rand(c, scale=0.5)
            state[f"{prefix}.running_var"] = rand(c, scale=0.1, offset=1.0).abs()
            state[f"{prefix}.num_batches_tracked"] = torch.tensor(10)
        else:
            c = ch(next(bases), width)
            state[f"{prefix}.weight"] = rand(c, cin, 3, 3, scale=(2 / (cin * 9)) ** 0.5)
            state[f"{prefix}.bias"] = rand(c, scale=0.1)
            cin, last = c, prefix
    fc = ch(4096, width)
    state["classifier.0.weight"] = rand(fc, cin * 49, scale=(2 / (cin * 49)) ** 0.5)
    state["classifier.0.bias"] = rand(fc, scale=0.1)
    state["classifier.3.weight"] = rand(fc, fc, scale=(2 / fc) ** 0.5)
    state["classifier.3.bias"] = rand(fc, scale=0.1)
    state["classifier.6.weight"] = rand(1000, fc)
    state["classifier.6.bias"] = rand(1000)
    return state


def release_caffemodel(arch: str = "fcn8s", width: float = 1 / 32, num_classes: int = 21, seed: int = 0) -> bytes:
    """The bytes of a random FCN caffemodel in the release's layer layout (new-style layers)."""
    import caffe_wire as cw

    blobs = fcn_blobs(arch, width, num_classes, np.random.default_rng(seed))
    return cw.net([(n, caffe_type(n, blobs), blobs[n]) for n in fcn_layer_order(blobs)], v1=False)
