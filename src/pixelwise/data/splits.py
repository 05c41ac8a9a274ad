"""The FCN paper's splits, computed from the VOC2012 and SBD list files.

- ``seg11valid``: VOC2012 ``val`` ids from 2011 or earlier (the ``YYYY_`` prefix is at most 2011,
  i.e. the VOC2011 val images) minus every id in SBD ``train``. FCN validates on this set; on the
  real data it is documented as 736 images (this number comes from the FCN paper and code, it is
  not measured by pixelwise's tests).
- ``sbd_voc_train``: SBD ``train`` union VOC2012 ``train``, duplicates removed, minus anything in
  ``seg11valid``. For an id in both, VOC's own annotation is used by default (it marks object
  boundaries as 255 = ignore); ``prefer="sbd"`` takes SBD's.
"""

from __future__ import annotations

from pathlib import Path

from pixelwise.data.base import dedupe
from pixelwise.data.sbd import SBDSegmentation, sbd_split_ids
from pixelwise.data.voc import VOCSegmentation, voc_split_ids
from pixelwise.errors import DataError


def year_of(image_id: str) -> int | None:
    """Return the year prefix of a VOC id (``2008_000123`` -> 2008), or None if it has none."""
    head = image_id.split("_", 1)[0]
    return int(head) if len(head) == 4 and head.isdigit() else None


def seg11valid_ids(voc_root: str | Path, sbd_root: str | Path) -> list[str]:
    """Return FCN's ``seg11valid`` ids (VOC2012 val order): VOC2011 val minus SBD train."""
    sbd_train = set(sbd_split_ids(sbd_root, "train"))
    out = []
    for name in voc_split_ids(voc_root, "val"):
        year = year_of(name)
        if year is not None and year <= 2011 and name not in sbd_train:
            out.append(name)
    return dedupe(out)


def sbd_voc_train_ids(
    voc_root: str | Path, sbd_root: str | Path, *, prefer: str = "voc"
) -> list[tuple[str, str]]:
    """Return ``[(source, id), ...]`` of the training union; ``source`` is ``"voc"`` or ``"sbd"``.

    Order: SBD train ids first, then VOC train ids not in SBD train. An id in both comes from
    ``prefer``. Ids in ``seg11valid`` are removed.
    """
    if prefer not in ("voc", "sbd"):
        raise DataError(f"prefer must be 'voc' or 'sbd', got {prefer!r}")
    valid = set(seg11valid_ids(voc_root, sbd_root))
    sbd_ids = [i for i in dedupe(sbd_split_ids(sbd_root, "train")) if i not in valid]
    voc_ids = [i for i in dedupe(voc_split_ids(voc_root, "train")) if i not in valid]
    voc_set = set(voc_ids)
    sbd_set = set(sbd_ids)
    out = [("voc" if (prefer == "voc" and i in voc_set) else "sbd", i) for i in sbd_ids]
    out += [("voc", i) for i in voc_ids if i not in sbd_set]
    return out


class SBDVOCTrain:
    """The training union SBD train + VOC2012 train (see the module docstring), 21 VOC classes.

    Samples from VOC carry its 255 boundaries; samples from SBD have none. :meth:`source`
    says where sample ``i`` comes from.
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

    def source(self, index: int) -> str:
        """Return ``"voc"`` or ``"sbd"``: whose annotation sample ``index`` uses."""
        return self._items[index][0]

    def __len__(self) -> int:
        return len(self._items)

    def __getitem__(self, index: int) -> dict:
        """Return sample ``index`` from VOC or SBD (same keys as those datasets)."""
        source, k = self._items[index]
        return (self.voc if source == "voc" else self.sbd)[k]

    def __repr__(self) -> str:
        return f"SBDVOCTrain(n={len(self)}, voc={len(self.voc)}, sbd={len(self.sbd)})"
