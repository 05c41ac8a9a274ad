"""PASCAL VOC 2012 segmentation (``VOCdevkit/VOC2012``) and FCN's ``seg11valid`` split of it.

Layout read::

    VOC2012/JPEGImages/<id>.jpg
    VOC2012/SegmentationClass/<id>.png     palette PNG, class index, 255 = boundary (ignored)
    VOC2012/SegmentationObject/<id>.png    palette PNG, object index 1..K, 255 = boundary
    VOC2012/ImageSets/Segmentation/{train,val,trainval}.txt

Samples carry ``instances``/``boxes``/``box_labels`` when SegmentationObject is there; each
object's class is the majority class of its pixels in SegmentationClass, and boundary pixels (255)
belong to no instance.

``seg11valid`` is FCN's validation set, the 736 ids of the ``seg11valid.txt`` list released with
FCN (``data/pascal/seg11valid.txt`` in the FCN code). pixelwise ships a byte-identical copy as
package data (``pixelwise/data/seg11valid.txt``) and uses it as is, in its order (sorted). FCN
describes the set as VOC2011 val images not in SBD train; that cannot be recomputed from the
VOC2012 lists alone (it needs VOC2011's own val list): every VOC2012 ``val`` id has a 2007-2011
prefix (VOC2012 annotated more images, none with a 2012 prefix), so "VOC2012 val from 2011 or
earlier minus SBD train" gives far more than 736 ids. Given a VOC2012 root,
:func:`seg11valid_ids` checks that every listed id has its ``SegmentationClass/<id>.png`` there.
"""

from __future__ import annotations

import functools
from importlib import resources
from pathlib import Path

import numpy as np

from pixelwise.data.base import format_ids, parse_id_list, require_same_size
from pixelwise.data.instances import instances_from_objects
from pixelwise.data.io import read_mask
from pixelwise.data.listed import Layout, ListedDataset
from pixelwise.errors import DataError

VOC_LAYOUT = Layout(
    kind="VOC", title="a VOC2012 directory", lists="ImageSets/Segmentation",
    images="JPEGImages", masks="SegmentationClass", instances="SegmentationObject", label_ext=".png",
    parents=("VOC2012", "VOCdevkit/VOC2012"),
)

SEG11VALID_FILE = "seg11valid.txt"
"""Name of the shipped list, a data file of the :mod:`pixelwise.data` package."""


def voc_split_ids(root: str | Path, split: str) -> list[str]:
    """Return the ids of ``ImageSets/Segmentation/<split>.txt`` under a VOC2012 root."""
    return VOC_LAYOUT.split_ids(root, split, also=("seg11valid (FCN's list, shipped with pixelwise)",))


@functools.lru_cache(maxsize=1)
def _shipped_seg11valid() -> tuple[str, ...]:
    try:
        text = resources.files("pixelwise.data").joinpath(SEG11VALID_FILE).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:  # a broken install: the data file did not ship
        raise DataError(
            f"pixelwise/data/{SEG11VALID_FILE}: the shipped seg11valid list is missing or unreadable "
            f"({exc}); reinstall pixelwise"
        ) from None
    return tuple(parse_id_list(text))


def seg11valid_list() -> list[str]:
    """Return FCN's ``seg11valid`` ids as shipped (736 ids, the list's order); reads no dataset."""
    return list(_shipped_seg11valid())


def seg11valid_ids(voc_root: str | Path | None = None) -> list[str]:
    """Return FCN's ``seg11valid`` ids (the shipped list, in its order), checked against ``voc_root``.

    With ``voc_root`` (a VOC2012 directory, or a directory above it), every listed id must have
    ``SegmentationClass/<id>.png`` there, else a one-line :class:`DataError` names the root and
    some missing ids.
    """
    ids = seg11valid_list()
    if voc_root is not None:
        root = VOC_LAYOUT.find_root(voc_root)
        missing = [i for i in ids if not VOC_LAYOUT.paths(root, i)[1].is_file()]
        if missing:
            raise DataError(
                f"{root}: {len(missing)} of the {len(ids)} seg11valid ids have no "
                f"SegmentationClass/<id>.png: {format_ids(missing)}; seg11valid needs the full "
                "VOC2012 trainval segmentation release (VOCtrainval_11-May-2012)"
            )
    return ids


class VOCSegmentation(ListedDataset):
    """PASCAL VOC 2012 segmentation samples (raw numpy; see :mod:`pixelwise.data` for the keys).

    ``split`` names a list in ``ImageSets/Segmentation`` or is ``"seg11valid"`` (FCN's validation
    set: the 736 ids of the list FCN released, shipped as package data). ``ids`` overrides the split.
    ``with_instances``: None = when SegmentationObject/ exists, True = required, False = never.
    """

    layout = VOC_LAYOUT

    def _split_ids(self, split: str) -> list[str]:
        return seg11valid_ids(self.root) if split == "seg11valid" else voc_split_ids(self.root, split)

    def _read_mask(self, path: Path) -> np.ndarray:
        return read_mask(path)

    def _read_instances(
        self, path: Path, mask: np.ndarray, mask_path: Path
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        objects = read_mask(path)
        require_same_size(path, "object mask", objects.shape, mask_path, mask.shape)
        return instances_from_objects(objects, mask)
