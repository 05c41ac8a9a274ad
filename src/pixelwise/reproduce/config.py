"""Settings of ``pixelwise reproduce``: what is trained, for how long, and how it is evaluated."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass
class ReproduceConfig:
    """One reproduction run. The defaults fit the built-in synthetic data on a 2-core CPU in the
    time budget; they are CPU-scaled (small widths, the ``demo`` recipe, pad-free FCN), not the
    papers' GPU schedules. ``quick()`` is a few-step version for tests."""

    dataset: str = "synthetic"
    data_root: str | None = None
    data_options: dict = field(default_factory=dict)
    train_split: str = "train"
    val_split: str = "val"
    val_limit: int | None = 100
    out: str = "runs/reproduce"
    seed: int = 0
    device: str = "auto"
    recipe: str = "demo"
    # FCN: width, geometry, and steps of the staged 32s -> 16s -> 8s run and of the at-once run
    fcn_width: float = 0.125
    pad100: bool = False
    steps_32s: int = 800
    steps_16s: int = 400
    steps_8s: int = 400
    steps_atonce: int = 1600  # as many steps as the three stages together
    fcn_batch: int | None = None  # None: the recipe's (16)
    # DeconvNet: width, crop size, two training stages, BN statistics
    deconv_width: float = 0.125
    crop_size: int = 224
    steps_objects: int = 100
    steps_proposals: int = 100
    bn_batches: int = 20
    deconv_batch: int | None = None  # None: the recipe's
    # inference: DeconvNet proposals and their handling, dense CRF
    proposals: str = "selective-search"
    top_k: int = 20
    min_box_frac: float = 0.15
    proposal_batch: int = 10
    crf: bool = True
    grid_indices: list[int] = field(default_factory=lambda: [0, 1, 2, 3, 4])
    progress: bool = True

    def to_dict(self) -> dict:
        """Return the settings as a plain dict (saved in results.json)."""
        return asdict(self)

    @classmethod
    def quick(cls, **changes) -> "ReproduceConfig":
        """A few steps of everything on a handful of small images (seconds, for tests)."""
        base = dict(
            data_options={"size": 64, "length": 16},
            val_limit=4,
            fcn_width=0.03125,
            steps_32s=2,
            steps_16s=2,
            steps_8s=2,
            steps_atonce=2,
            deconv_width=0.03125,
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
