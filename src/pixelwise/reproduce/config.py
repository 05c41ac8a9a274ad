"""Settings of ``pixelwise reproduce``: what is trained, for how long, and how it is evaluated."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from pixelwise.data.synthetic import DEFAULT_WORLD
from pixelwise.pretrain import PretrainConfig

# the models reproduce trains, and their names in tables
FCN_MODELS = ("fcn32s", "fcn16s", "fcn8s", "fcn8s_atonce")
MODELS = (*FCN_MODELS, "deconvnet")
"""The trained models (``--models`` takes these names; a model brings the stages it starts from)."""
DISPLAY = {
    "fcn32s": "FCN-32s",
    "fcn16s": "FCN-16s",
    "fcn8s": "FCN-8s",
    "fcn8s_atonce": "FCN-8s at-once",
    "deconvnet": "DeconvNet",
    "edeconvnet_mean": "EDeconvNet (mean)",
    "edeconvnet_release": "EDeconvNet (release: product)",
}


@dataclass
class ReproduceConfig:
    """One reproduction run. The defaults fit the built-in ``objects`` world on a 2-core CPU in the
    time budget: small widths (with the width floor), the ``demo`` recipe, pad-free FCN, 96-pixel
    proposals and a backbone pretrained on the world's object crops (its ImageNet), not the
    papers' GPU schedules. Every model is trained once per entry of ``seeds`` (the pretrained
    backbone, like ImageNet weights, is shared). ``quick()`` is a few-step version for tests."""

    dataset: str = "synthetic"
    data_root: str | None = None
    data_options: dict = field(default_factory=lambda: {"size": 96, "num_classes": 8, "length": 3000})
    train_split: str = "train"
    val_split: str = "val"
    val_limit: int | None = 100
    out: str = "runs/reproduce"
    seeds: list[int] = field(default_factory=lambda: [0, 1])
    device: str = "auto"
    recipe: str = "demo"
    # the backbone: ImageNet-style weights for every model; None on synthetic data = `pixelwise pretrain`
    backbone_weights: str | None = None
    pretrain_steps: int = 2400
    pretrain_scenes: int = 2000
    pretrain_batch: int = 32
    width: float = 0.125
    min_channels: int | None = None  # None: the models' default floor
    input_size: int = 96  # DeconvNet proposal side = the pretraining crop side (FCN's fc6 is input_size/32)
    # FCN: geometry, and steps of the staged 32s -> 16s -> 8s run and of the at-once run
    pad100: bool = False
    steps_32s: int = 1200
    steps_16s: int = 600
    steps_8s: int = 600
    steps_atonce: int = 2400  # as many steps as the three stages together
    fcn_batch: int | None = None  # None: the recipe's
    # DeconvNet: two training stages, deep supervision, BN statistics
    steps_objects: int = 1500
    steps_proposals: int = 750
    deep_supervision: float = 1.0
    bn_batches: int = 20
    deconv_batch: int | None = None  # None: the recipe's
    # inference: DeconvNet proposals and their handling, dense CRF
    proposals: str = "selective-search"
    top_k: int = 20
    min_box_frac: float = 0.15
    proposal_batch: int = 20
    crf: bool = True
    grid_indices: list[int] = field(default_factory=lambda: [0, 1, 2, 3, 4])
    progress: bool = True
    threads: int = 0  # CPU threads for training (0 = the trainer's default: cores / processes)
    # real data (CamVid): where models are scored, at which resolution they run, what is trained
    eval_split: str | None = None  # None: val_split (the synthetic world); CamVid: test
    select_on_val: bool = False  # validate during training on val_split and keep each stage's best.pt
    input_scale: float = 1.0  # images resized by this for the networks; scores resized back and judged at full size
    crop_size: int | None = None  # whole-image training crops (None: the recipe's)
    deconv_sampling: str = "proposals"  # DeconvNet: "proposals" (objects, then proposals) or "whole" (image crops)
    steps_deconv_whole: int = 800  # DeconvNet steps with deconv_sampling="whole"
    models: list[str] | None = None  # the models to train (None: all of MODELS)
    boundary: bool = False  # also score the boundary F1 (BF), CamVid's fourth metric
    crf_models: list[str] | None = None  # the models also scored after the dense CRF (None: every one)

    def to_dict(self) -> dict:
        """Return the settings as a plain dict (saved in results.json)."""
        return asdict(self)

    @property
    def num_classes(self) -> int | None:
        """The synthetic world's class count (None for other datasets: the data decides)."""
        return self.data_options.get("num_classes", 8) if self.dataset == "synthetic" else None

    def pretrain_config(self) -> PretrainConfig:
        """Return the settings of the backbone pretraining on this run's synthetic world."""
        opts = self.data_options
        return PretrainConfig(world=opts.get("world", DEFAULT_WORLD), image_size=int(opts.get("size", 96)),
                              num_classes=int(self.num_classes or 8), data_seed=int(opts.get("seed", 0)),
                              scenes=self.pretrain_scenes, val_scenes=max(4, min(200, self.pretrain_scenes // 10)),
                              batch_size=self.pretrain_batch, crop_size=self.input_size, width=self.width,
                              **({} if self.min_channels is None else {"min_channels": self.min_channels}),
                              steps=self.pretrain_steps, progress=self.progress, threads=self.threads)

    @classmethod
    def camvid(cls, **changes) -> "ReproduceConfig":
        """CamVid on a 2-core CPU: every model from scratch with the ``camvid`` recipe at width 1/4 on the
        images halved (scored on the 233 test images at 360x480, with BF), FCN-32s -> 16s -> 8s, DeconvNet
        on whole-image crops, best stage checkpoints picked on the 101 val images; the dense CRF on EDeconvNet
        only (3 s an image at 360x480 on one core)."""
        base = dict(
            dataset="camvid", data_options={}, train_split="train", val_split="val", eval_split="test",
            val_limit=None, select_on_val=True, recipe="camvid", width=0.25, input_scale=0.5, input_size=160,
            crop_size=160, steps_32s=800, steps_16s=400, steps_8s=400, steps_atonce=1600,
            deconv_sampling="whole", steps_deconv_whole=800, deep_supervision=1.0, bn_batches=20,
            proposals="none", boundary=True, models=["fcn32s", "fcn16s", "fcn8s", "deconvnet"],
            crf_models=["edeconvnet_mean"], grid_indices=[0, 40, 80, 120, 160, 200],
        )
        base.update(changes)
        return cls(**base)

    @classmethod
    def quick_camvid(cls, **changes) -> "ReproduceConfig":
        """:meth:`camvid` with a few steps of tiny models on 32-px crops (seconds, for tests on a fixture)."""
        base = dict(val_limit=4, seeds=[0], width=0.03125, min_channels=4, input_size=32, crop_size=32,
                    steps_32s=2, steps_16s=2, steps_8s=2, steps_atonce=2, steps_deconv_whole=2, bn_batches=2,
                    fcn_batch=2, deconv_batch=2, grid_indices=[0, 1], progress=False)
        base.update(changes)
        return cls.camvid(**base)

    @classmethod
    def quick(cls, **changes) -> "ReproduceConfig":
        """A few steps of everything on a handful of small images (seconds, for tests)."""
        base = dict(
            data_options={"size": 64, "length": 16},
            val_limit=4,
            seeds=[0],
            width=0.03125,
            min_channels=4,
            pretrain_steps=2,
            pretrain_scenes=16,
            pretrain_batch=4,
            steps_32s=2,
            steps_16s=2,
            steps_8s=2,
            steps_atonce=2,
            steps_objects=2,
            steps_proposals=2,
            bn_batches=2,
            fcn_batch=2,
            deconv_batch=2,
            top_k=3,
            grid_indices=[0, 1],
            progress=False,
        )
        base.update(changes)
        return cls(**base)
