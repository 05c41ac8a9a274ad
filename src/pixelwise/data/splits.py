"""The FCN paper's training set: the union of SBD and VOC2012 training ids (``sbd_voc_train``).

SBD ``train`` union VOC2012 ``train``, duplicates removed, minus every id of FCN's validation list
``seg11valid`` (:func:`pixelwise.data.voc.seg11valid_list`). For an id in both, VOC's own
annotation is used by default (it marks object boundaries as 255 = ignore); ``prefer="sbd"``
takes SBD's.
"""

from __future__ import annotations

from pathlib import Path

from pixelwise.data.base import dedupe
from pixelwise.data.sbd import SBDSegmentation, sbd_split_ids
from pixelwise.data.voc import VOCSegmentation, seg11valid_list, voc_split_ids
from pixelwise.errors import DataError


def sbd_voc_train_ids(
    voc_root: str | Path, sbd_root: str | Path, *, prefer: str = "voc"
) -> list[tuple[str, str]]:
    """Return ``[(source, id), ...]`` of the training union; ``source`` is ``"voc"`` or ``"sbd"``.

    Order: SBD train ids first, then VOC train ids not in SBD train. An id in both comes from
    ``prefer``. Ids in the shipped ``seg11valid`` list are removed (the VOC tree need not hold
    them: nothing of seg11valid is read here).
    """
    if prefer not in ("voc", "sbd"):
        raise DataError(f"prefer must be 'voc' or 'sbd', got {prefer!r}")
    valid = set(seg11valid_list())
    sbd_ids = [i for i in dedupe(sbd_split_ids(sbd_root, "train")) if i not in valid]
    voc_ids = [i for i in dedupe(voc_split_ids(voc_root, "train")) if i not in valid]
    voc_set = set(voc_ids)
    sbd_set = set(sbd_ids)
    out = [("voc" if (prefer == "voc" and i in voc_set) else "sbd", i) for i in sbd_ids]
    out += [("voc", i) for i in voc_ids if i not in sbd_set]
    return out


class SBDVOCTrain:
    """The training union SBD train + VOC2012 train (see the module docstring), 21 VOC classes.

    Samples from VOC carry its 255 boundaries; samples from SBD have none.
    """

    num_classes: int = 21

    def __init__(
        self,
        voc_root: str | Path,
        sbd_root: str | Path,
        *,
        prefer: str = "voc",
        with_instances: bool | None = None,
    ) -> None:
        items = sbd_voc_train_ids(voc_root, sbd_root, prefer=prefer)
        voc_names = [i for s, i in items if s == "voc"]
        sbd_names = [i for s, i in items if s == "sbd"]
        self.voc = VOCSegmentation(voc_root, "train", ids=voc_names, with_instances=with_instances)
        self.sbd = SBDSegmentation(sbd_root, "train", ids=sbd_names, with_instances=with_instances)
        self.class_names: list[str] = list(self.voc.class_names)
        voc_pos = {n: k for k, n in enumerate(voc_names)}
        sbd_pos = {n: k for k, n in enumerate(sbd_names)}
        self._items = [(s, voc_pos[i] if s == "voc" else sbd_pos[i]) for s, i in items]
        self.names: list[str] = [i for _, i in items]
        self.split = "sbd_voc_train"

    def __len__(self) -> int:
        return len(self._items)

    def __getitem__(self, index: int) -> dict:
        """Return sample ``index`` from VOC or SBD (same keys as those datasets)."""
        source, k = self._items[index]
        return (self.voc if source == "voc" else self.sbd)[k]

    def __repr__(self) -> str:
        return f"SBDVOCTrain(n={len(self)}, voc={len(self.voc)}, sbd={len(self.sbd)})"
