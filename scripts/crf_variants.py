"""Score a demo run's FCN-8s, DeconvNet and EDeconvNet after the dense CRF in several settings:
the release's (the demo's `+ CRF` rows), without its smoothness kernel, with pydensecrf's
normalised preset, and with a wider colour tolerance. It measures why the CRF claims fail on the
built-in world (README, the demo's claims).

    pixelwise demo --out demo-out --seed 0
    python scripts/crf_variants.py demo-out --seed 0
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pixelwise.checkpoint import load_model
from pixelwise.data import build_dataset
from pixelwise.demo import QUICK, DemoSettings, demo_config
from pixelwise.evaluator import Evaluator
from pixelwise.inference.crf import dense_crf
from pixelwise.reproduce.run import image_scores

VARIANTS = {
    "no CRF": None,
    "release (the demo's + CRF)": {},
    "release without the smoothness kernel": {"gaussian_weight": 0.0},
    "pydensecrf preset (normalised)": {"preset": "pydensecrf"},
    "release, colour tolerance srgb 13": {"bilateral_srgb": 13.0},
}
MODELS = ("fcn8s", "deconvnet", "edeconvnet_mean")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("demo_out", type=Path, help="the --out folder of a finished `pixelwise demo`")
    p.add_argument("--seed", type=int, default=0, help="the demo's --seed [0]")
    p.add_argument("--quick", action="store_true", help="the demo ran with --quick")
    args = p.parse_args()
    settings = (QUICK if args.quick else DemoSettings()).resolved()
    cfg = demo_config(settings, args.demo_out, args.seed, progress=False, threads=0)
    val = build_dataset(cfg.dataset, split=cfg.val_split, **cfg.data_options)
    models = {k: load_model(str(args.demo_out / k / "last.pt")) for k in ("fcn8s", "deconvnet")}
    scorers = {(m, v): Evaluator(val.num_classes, boundary=True) for m in MODELS for v in VARIANTS}
    for i in range(min(cfg.val_limit, len(val))):
        sample = val[i]
        scores, _, _ = image_scores(cfg, models, sample["image"], list(MODELS))
        for m in MODELS:
            probs = scores[m].float().softmax(0).numpy()
            for v, options in VARIANTS.items():
                refined = probs if options is None else dense_crf(sample["image"], probs, **options)
                scorers[(m, v)].add(refined, sample["mask"], size_map=sample["size_map"])
    print("| model | CRF | mean IU | BF | small-object IU |\n|---|---|---|---|---|")
    for (m, v), scorer in scorers.items():
        r = scorer.result()
        small = r["size_buckets"]["small"]["mean_iu"]
        print(f"| {m} | {v} | {100 * r['mean_iu']:.1f} | {100 * r['boundary_f1']:.1f} | {100 * small:.1f} |")


if __name__ == "__main__":
    main()
