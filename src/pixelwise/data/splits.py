"""The FCN paper's splits: ``seg11valid`` (shipped with pixelwise) and the SBD + VOC training union.

- ``seg11valid``: FCN's validation set, the 736 ids of the ``seg11valid.txt`` list released with
  FCN (``data/pascal/seg11valid.txt`` in the FCN code). pixelwise ships a byte-identical copy as
  package data (``pixelwise/data/seg11valid.txt``) and uses it as is, in its order (sorted). FCN
  describes the set as VOC2011 val images not in SBD train; that cannot be recomputed from the
  VOC2012 lists alone (it needs VOC2011's own val list): every VOC2012 ``val`` id has a 2007-2011
  prefix (VOC2012 annotated more images, none with a 2012 prefix), so "VOC2012 val from 2011 or
  earlier minus SBD train" gives far more than 736 ids. Given a VOC2012 root,
  :func:`seg11valid_ids` checks that every listed id has its ``SegmentationClass/<id>.png`` there.
- ``sbd_voc_train``: SBD ``train`` union VOC2012 ``train``, duplicates removed, minus every id in
  ``seg11valid``. For an id in both, VOC's own annotation is used by default (it marks object
  boundaries as 255 = ignore); ``prefer="sbd"`` takes SBD's.
"""

from __future__ import annotations

import functools
from importlib import resources
from pathlib import Path

from pixelwise.data.base import dedupe, format_ids
from pixelwise.data.sbd import SBDSegmentation, sbd_split_ids
from pixelwise.data.voc import VOCSegmentation, resolve_voc_root, voc_split_ids
from pixelwise.errors import DataError

SEG11VALID_FILE = "seg11valid.txt"
"""Name of the shipped list, a data file of the :mod:`pixelwise.data` package."""
SEG11VALID_SIZE = 736
"""Number of ids in FCN's ``seg11valid`` list."""


def year_of(image_id: str) -> int | None:
    """Return the year prefix of a VOC id (``2008_000123`` -> 2008), or None if it has none."""
    head = image_id.split("_", 1)[0]
    return int(head) if len(head) == 4 and head.isdigit() else None


@functools.lru_cache(maxsize=1)
def _shipped_seg11valid() -> tuple[str, ...]:
    try:
        text = resources.files("pixelwise.data").joinpath(SEG11VALID_FILE).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:  # a broken install: the data file did not ship
        raise DataError(
            f"pixelwise/data/{SEG11VALID_FILE}: the shipped seg11valid list is missing or unreadable "
            f"({exc}); reinstall pixelwise"
        ) from None
    ids = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            ids.append(line.split()[0])
    return tuple(ids)


def seg11valid_list() -> list[str]:
    """Return FCN's ``seg11valid`` ids as shipped (736 ids, the list's order); reads no dataset."""
    return list(_shipped_seg11valid())


def seg11valid_ids(voc_root: str | Path | None = None, sbd_root: str | Path | None = None) -> list[str]:
    """Return FCN's ``seg11valid`` ids (the shipped list, in its order), checked against ``voc_root``.

    With ``voc_root`` (a VOC2012 directory, or a directory above it), every listed id must have
    ``SegmentationClass/<id>.png`` there, else a one-line :class:`DataError` names the root and
    some missing ids. ``sbd_root`` is not needed any more (the list is not recomputed from SBD);
    it is accepted, and not read, so that older calls keep working.
    """
    del sbd_root  # kept in the signature for older callers; the shipped list needs no SBD
    ids = seg11valid_list()
    if voc_root is not None:
        root = resolve_voc_root(voc_root)
        mask_dir = root / "SegmentationClass"
        missing = [i for i in ids if not (mask_dir / f"{i}.png").is_file()]
        if missing:
            raise DataError(
                f"{root}: {len(missing)} of the {len(ids)} seg11valid ids have no "
                f"SegmentationClass/<id>.png: {format_ids(missing)}; seg11valid needs the full "
                "VOC2012 trainval segmentation release (VOCtrainval_11-May-2012)"
            )
    return ids


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
