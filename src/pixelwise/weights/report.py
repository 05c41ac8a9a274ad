"""What a weight import did: which layers matched, which were kept or left unused."""

from __future__ import annotations

from dataclasses import dataclass, field

from pixelwise.convention import InputConvention


@dataclass
class ImportRow:
    """One transplanted module: pixelwise name, source layer(s), weight shape and a note."""

    target: str
    source: str
    shape: tuple[int, ...]
    note: str = ""


@dataclass
class ImportReport:
    """The result of loading foreign weights into a pixelwise model.

    ``input_convention`` is how the weights expect images (it has been set on the model);
    ``rows`` the matched modules; ``kept`` the model's modules the file did not provide (left at
    their initialisation); ``unused`` the file's weighted layers nothing used; ``warnings`` things
    to act on (e.g. batch-norm statistics to recompute).
    """

    source: str
    source_format: str
    input_convention: InputConvention
    rows: list[ImportRow] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    unused: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    arch: str | None = None
    num_classes: int | None = None
    width: float | None = None
    layout: str | None = None  # Caffe FCN layer naming ("fcn" / "fcn-pascal"), when it applies

    @property
    def matched(self) -> int:
        """Number of modules that received weights."""
        return len(self.rows)

    def table(self) -> str:
        """Return a plain-text table of the matched layers, then kept/unused/warnings lines."""
        w_t = max([len("pixelwise module")] + [len(r.target) for r in self.rows])
        w_s = max([len("source layer")] + [len(r.source) for r in self.rows])
        w_p = max([len("shape")] + [len(_shape(r.shape)) for r in self.rows])
        lines = [f"{'pixelwise module':<{w_t}}  {'source layer':<{w_s}}  {'shape':<{w_p}}  note"]
        lines += [f"{r.target:<{w_t}}  {r.source:<{w_s}}  {_shape(r.shape):<{w_p}}  {r.note}".rstrip() for r in self.rows]
        lines.append(
            f"{self.matched} modules loaded from {self.source_format}; "
            f"input convention {self.input_convention.name}"
        )
        if self.kept:
            lines.append(f"kept at initialisation (not in the file): {', '.join(self.kept)}")
        if self.unused:
            lines.append(f"unused layers in the file: {', '.join(self.unused)}")
        lines += [f"warning: {w}" for w in self.warnings]
        return "\n".join(lines)


def _shape(shape: tuple[int, ...]) -> str:
    return "x".join(str(d) for d in shape)
