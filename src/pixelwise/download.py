"""Downloads: the one module every pixelwise download goes through (datasets, pretrained weights,
the benchmarks' peer).

- :class:`Remote` names a file on the web: its URL, file name, published hash (``md5:``, ``sha1:``
  or ``sha256:`` + hex digits) and size.
- :func:`fetch` returns a checked local copy of it: one already in the folder, a file the user
  downloaded by hand (``from_file``), or a download over HTTP(S) with a progress bar on a terminal.
  The bytes go to ``NAME.part`` and a dropped connection is resumed with an HTTP ``Range``
  request; the file gets its real name only once it is whole and its hash matches. A file with no
  published hash can have the SHA-256 of its first download recorded beside it (``record=True``):
  later copies must match it. ``url=`` or ``$PIXELWISE_MIRROR`` (a base URL or a folder holding
  the files under their names) replace where the file comes from, never what it must hash to.
- :func:`unpack` extracts one folder of a tar or zip archive into a staging folder beside its
  target and renames it into place, so a half-unpacked tree never carries the real name. Every
  member is checked first (absolute paths, ``..``, links pointing outside, devices refuse the whole
  archive), and tar members are extracted with ``filter="data"`` as well.
- :func:`publish_dir` renames a staged folder onto its target; :func:`tree_digest` hashes a folder's
  files (for archives whose bytes are not stable, such as GitHub's generated ones).

Every failure is a :class:`DownloadError` (a :class:`~pixelwise.errors.PixelwiseError`): one line
naming the URL or file, what went wrong and what to do next.
"""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import http.client
import os
import shutil
import sys
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Callable, Iterator

from pixelwise.cache import cache_dir
from pixelwise.errors import PixelwiseError, first_line
from pixelwise.fileio import atomic_file, ensure_writable_dir, write_error, writing

MIRROR_ENV = "PIXELWISE_MIRROR"
"""Environment variable: a base URL (or a local folder) that holds every file under its own name."""

HASH_ALGORITHMS = ("md5", "sha1", "sha256")
TIMEOUT_S = 30.0
"""Seconds to wait for a server's answer (to connect, and between two reads) before giving up."""
RETRIES = 2
"""Attempts after one that fails without receiving a byte (attempts that make progress do not count)."""
RECORD_SUFFIX = ".sha256"
STAGING_PREFIX = ".pixelwise-staging-"
_CHUNK = 1 << 20


class DownloadError(PixelwiseError):
    """A download, a hash check or an unpacking failed; the message names the URL or file."""


class UnsafeArchiveError(DownloadError):
    """An archive holds a member that would land outside the folder it is unpacked into."""


def split_hash(text: str) -> tuple[str, str]:
    """Return ``(algorithm, hex digest)`` of ``"md5:..."``, ``"sha1:..."`` or ``"sha256:..."``;
    ValueError for anything else."""
    algorithm, sep, digest = text.partition(":")
    digest = digest.strip().lower()
    if not sep or algorithm not in HASH_ALGORITHMS or not digest or set(digest) - set("0123456789abcdef"):
        raise ValueError(f"a hash is ALGORITHM:HEX with ALGORITHM one of {', '.join(HASH_ALGORITHMS)}, got {text!r}")
    return algorithm, digest


def about(size: int | None) -> str:
    """Return ``size`` bytes as ``about 1.9 GB`` / ``about 528 MB`` (binary units), or ``size unknown``."""
    if not size:
        return "size unknown"
    for unit, scale in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if size >= scale:
            value = size / scale
            return f"about {value:.1f} {unit}" if value < 10 else f"about {value:.0f} {unit}"
    return f"{size} bytes"


def mirror_url(mirror: str, filename: str) -> str:
    """Return where ``mirror`` (a base URL, or a local folder) keeps ``filename``."""
    if "://" not in mirror:
        return Path(mirror).expanduser().resolve().joinpath(filename).as_uri()
    return f"{mirror.rstrip('/')}/{urllib.parse.quote(filename)}"


@dataclass(frozen=True)
class Remote:
    """A file on the web: ``url``, the ``filename`` it is stored under, its published ``hash``
    (``ALGORITHM:HEX``; None when its publisher gives none) and its ``size`` in bytes (about; for
    messages)."""

    url: str
    filename: str
    hash: str | None = None
    size: int | None = None

    def __post_init__(self) -> None:
        if self.hash is not None:
            split_hash(self.hash)

    def located(self, *, url: str | None = None, mirror: str | None = None) -> "Remote":
        """Return this file fetched from ``url``, else from ``mirror`` (:func:`mirror_url`), else
        from its own URL; the hash it must match stays the same."""
        if url:
            return replace(self, url=url)
        if mirror:
            return replace(self, url=mirror_url(mirror, self.filename))
        return self


def file_digest(path: str | os.PathLike, algorithm: str = "sha256") -> str:
    """Return the hex digest of the file at ``path`` (read in 1 MiB chunks)."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def check_file(path: str | os.PathLike, expected: str, *, what: str = "published") -> None:
    """Raise :class:`DownloadError` unless the file's hash is ``expected`` (``ALGORITHM:HEX``);
    ``what`` says where the expected hash comes from (``published``, ``recorded``)."""
    algorithm, want = split_hash(expected)
    try:
        got = file_digest(path, algorithm)
    except OSError as exc:
        raise DownloadError(f"{path}: cannot read it: {exc.strerror or exc}") from None
    if got != want:
        raise DownloadError(f"{path}: {algorithm} {got[:12]}... is not the {what} {want[:12]}... (a truncated, "
                            "corrupt or different file); delete it and download it again")


def _record_path(target: Path) -> Path:
    return target.with_name(target.name + RECORD_SUFFIX)


def recorded_hash(target: str | os.PathLike) -> str | None:
    """Return ``sha256:HEX`` recorded at the first download of ``target`` (None: none recorded)."""
    record = _record_path(Path(target))
    try:
        text = record.read_text(encoding="utf-8").split()
    except OSError:
        return None
    return f"sha256:{text[0]}" if text else None


def _record(target: Path, source: Path) -> str:
    """Record the SHA-256 of ``source`` as what ``target`` must hash to; return it."""
    digest = file_digest(source)
    with atomic_file(_record_path(target)) as tmp:
        tmp.write_text(f"{digest}  {target.name}\n", encoding="utf-8")
    return digest


def hand_hint(remote: Remote, target: Path) -> str:
    """The advice for a file that cannot be downloaded: where to get it and where to put it."""
    return (f"download {remote.filename} ({about(remote.size)}) by hand, then pass --from FILE or put it at "
            f"{target}; or set {MIRROR_ENV} to a URL or folder that has it")


def fetch(remote: Remote, folder: str | os.PathLike, *, from_file: str | os.PathLike | None = None,
          url: str | None = None, timeout: float = TIMEOUT_S, retries: int = RETRIES,
          progress: bool | None = None, record: bool = False) -> Path:
    """Return a local copy of ``remote`` whose hash is checked: ``from_file`` (checked where it is),
    else ``folder/<filename>`` when it is already there, else downloaded into it.

    The download comes from ``url``, else ``$PIXELWISE_MIRROR``, else ``remote.url``; it is
    resumed after a dropped connection (``<filename>.part``, kept across calls) and renamed to
    ``<filename>`` once whole and checked. ``progress``: a bar on stderr (None: on a terminal
    only). ``record``: a file without a published hash has the SHA-256 of its first copy recorded
    in ``<filename>.sha256``, and later copies must match it. Raises :class:`DownloadError` in one
    line, leaving no ``.part`` file unless it holds bytes worth resuming.
    """
    target = Path(folder) / remote.filename
    expected, what = (remote.hash, "published") if remote.hash else (recorded_hash(target), "recorded")
    if from_file is not None:
        source = Path(from_file).expanduser()
        if not source.is_file():
            raise DownloadError(f"--from {source}: no such file (expected {remote.filename}, {about(remote.size)})")
        _check_or_record(source, target, expected, what, record)
        return source
    if target.is_file():
        _check_or_record(target, target, expected, what, record)
        return target
    ensure_writable_dir(target.parent)
    part = target.with_name(target.name + ".part")
    where = remote.located(url=url, mirror=os.environ.get(MIRROR_ENV))
    try:
        _download(where.url, part, timeout=timeout, retries=retries, progress=progress)
    except DownloadError as exc:
        kept = part.stat().st_size if part.is_file() else 0
        if not kept:
            part.unlink(missing_ok=True)
        tail = f"; {about(kept)} kept in {part}: run again to resume" if kept else f"; {hand_hint(remote, target)}"
        raise DownloadError(f"{exc}{tail}") from None
    try:
        _check_or_record(part, target, expected, what, record)
    except DownloadError:
        part.unlink(missing_ok=True)
        raise DownloadError(f"{where.url}: the download does not match the {what} {expected} (deleted); "
                            f"{hand_hint(remote, target)}") from None
    with writing(target):
        os.replace(part, target)
    return target


def _check_or_record(path: Path, target: Path, expected: str | None, what: str, record: bool) -> None:
    if expected:
        check_file(path, expected, what=what)
    elif record:
        _record(target, path)


class _Interrupted(Exception):
    """A transfer that stopped early (refused, reset, timed out, closed); worth another attempt."""


def _download(url: str, part: Path, *, timeout: float, retries: int, progress: bool | None) -> None:
    """Download ``url`` into ``part``, resuming what it already holds; an attempt that adds bytes
    resets the count of failures, so only ``retries`` + 1 fruitless attempts in a row give up."""
    failures, best = 0, (part.stat().st_size if part.is_file() else 0)
    while True:
        try:
            _transfer(url, part, timeout=timeout, progress=progress)
            return
        except _Interrupted as exc:
            size = part.stat().st_size if part.is_file() else 0
            failures = 0 if size > best else failures + 1
            best = max(best, size)
            if failures > retries:
                raise DownloadError(f"cannot download {url}: {exc}") from None


def _open(url: str, have: int, timeout: float):
    """Open ``url`` asking for the bytes from ``have`` on; HTTP errors other than 5xx are final."""
    from pixelwise import __version__

    headers = {"User-Agent": f"pixelwise/{__version__}"}
    if have:
        headers["Range"] = f"bytes={have}-"
    try:
        return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:
            return None  # nothing after `have`: the part is whole (its hash decides)
        if exc.code >= 500:
            raise _Interrupted(f"HTTP {exc.code} {exc.reason}") from None
        raise DownloadError(f"cannot download {url}: HTTP {exc.code} {exc.reason}") from None
    except (OSError, http.client.HTTPException) as exc:  # URLError (refused, no such host), timeouts, resets
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        if isinstance(reason, TimeoutError) or "timed out" in str(reason):
            raise _Interrupted(f"no answer within {timeout:g} s") from None
        raise _Interrupted(reason if isinstance(reason, str) else first_line(reason)) from None


def _start_offset(response, have: int, part: Path) -> int:
    """Return where the response's body starts in the file: ``have`` for a 206 answering our range,
    0 for a whole file (a server that ignores ``Range``)."""
    if getattr(response, "status", None) != 206:
        return 0
    content_range = response.headers.get("Content-Range", "")
    start = content_range.removeprefix("bytes ").split("-")[0]
    if start != str(have):
        part.unlink(missing_ok=True)
        raise _Interrupted(f"the server sent bytes {content_range or '(no Content-Range)'} for bytes={have}-")
    return have


def _transfer(url: str, part: Path, *, timeout: float, progress: bool | None) -> None:
    """One attempt: append the rest of ``url`` to ``part``; :class:`_Interrupted` when it stops early."""
    from tqdm import tqdm

    have = part.stat().st_size if part.is_file() else 0
    response = _open(url, have, timeout)
    if response is None:
        return
    with response:
        offset = _start_offset(response, have, part)
        length = response.headers.get("Content-Length")
        total = offset + int(length) if length and length.isdigit() else None
        with writing(part), open(part, "ab" if offset else "wb") as out, tqdm(
                total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024, file=sys.stderr,
                desc=part.name.removesuffix(".part"), disable=None if progress is None else not progress,
                leave=False) as bar:
            while True:
                try:
                    chunk = response.read(_CHUNK)
                except (OSError, http.client.HTTPException) as exc:
                    raise _Interrupted(f"connection lost after {out.tell()} bytes ({first_line(exc)})") from None
                if not chunk:
                    break
                out.write(chunk)
                bar.update(len(chunk))
            received = out.tell()
    if total is not None and received < total:
        raise _Interrupted(f"connection closed after {received} of {total} bytes")


# -- archives -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Member:
    """An archive entry: its path, kind (``file``, ``dir``, ``symlink``, ``hardlink``, ``other``),
    a link's target, and the archive's own record of it."""

    name: str
    kind: str
    link: str = ""
    raw: object = None


def _tar_member(info: tarfile.TarInfo) -> _Member:
    kind = ("dir" if info.isdir() else "file" if info.isfile() else "symlink" if info.issym()
            else "hardlink" if info.islnk() else "other")
    return _Member(_clean(info.name), kind, info.linkname, info)


def _zip_member(info: zipfile.ZipInfo) -> _Member:
    return _Member(_clean(info.filename), "dir" if info.is_dir() else "file", "", info)


def _clean(name: str) -> str:
    """An archive path without a leading ``./`` or trailing ``/``."""
    while name.startswith("./"):
        name = name[2:]
    return name.rstrip("/")


def _escapes(path: str) -> bool:
    """Whether ``path`` (relative to the archive root) is absolute or climbs above the root."""
    if path.startswith(("/", "\\")) or PureWindowsPath(path).drive:
        return True
    depth = 0
    for part in PurePosixPath(path.replace("\\", "/")).parts:
        depth += -1 if part == ".." else 0 if part == "." else 1
        if depth < 0:
            return True
    return False


def _unsafe(member: _Member) -> str | None:
    """Why ``member`` may not be unpacked (None: it may)."""
    if _escapes(member.name) or ".." in PurePosixPath(member.name.replace("\\", "/")).parts:
        return "its path is absolute or has .."
    if member.kind == "other":
        return "it is a device, fifo or other special file"
    if member.kind == "hardlink" and _escapes(member.link):
        return f"it is a hard link to {member.link}, outside the folder"
    if member.kind == "symlink" and _escapes(str(PurePosixPath(member.name).parent / member.link)):
        return f"it is a symbolic link to {member.link}, outside the folder"
    return None


def _open_archive(path: Path) -> tuple[tarfile.TarFile | zipfile.ZipFile, list[_Member]]:
    """Return the open tar or zip file and its members; anything else is a DownloadError."""
    handle = None
    try:
        if zipfile.is_zipfile(path):
            handle = zipfile.ZipFile(path)
            return handle, [_zip_member(i) for i in handle.infolist()]
        handle = tarfile.open(path)
        return handle, [_tar_member(i) for i in handle.getmembers()]
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as exc:
        if handle is not None:
            handle.close()
        raise DownloadError(f"{path}: not a readable tar or zip archive ({first_line(exc)})") from None


def _kept_root(members: list[_Member], pattern: str, archive: Path) -> str:
    """Return the one archive folder that matches ``pattern`` (``*`` matches one path component)."""
    depth = len(PurePosixPath(pattern).parts)
    found = sorted({"/".join(PurePosixPath(m.name).parts[:depth]) for m in members
                    if len(PurePosixPath(m.name).parts) >= depth})
    matches = [f for f in found if fnmatch.fnmatchcase(f, pattern)]
    if len(matches) != 1:
        what = "no folder" if not matches else f"{len(matches)} folders ({', '.join(matches[:3])})"
        raise DownloadError(f"{archive}: {what} matching {pattern}/ in the archive; not the expected archive")
    return matches[0]


def _extract(handle: tarfile.TarFile | zipfile.ZipFile, members: list[_Member], root: str, stage: Path) -> None:
    """Extract the members under ``root`` into ``stage`` (archive paths kept)."""
    inside = [m.raw for m in members if m.name == root or m.name.startswith(root + "/")]
    if isinstance(handle, zipfile.ZipFile):
        for info in inside:
            handle.extract(info, stage)
    elif hasattr(tarfile, "data_filter"):
        handle.extractall(stage, members=inside, filter="data")
    else:  # a Python without extraction filters: the checks of unpack() are all there is
        handle.extractall(stage, members=inside)


@contextlib.contextmanager
def staging(parent: str | os.PathLike) -> Iterator[Path]:
    """Yield a new hidden folder in ``parent`` (same file system as its targets, so renames are
    atomic); it is removed with whatever is left in it when the block ends."""
    parent = ensure_writable_dir(parent)
    stage = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=parent))
    try:
        yield stage
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def publish_dir(staged: str | os.PathLike, target: str | os.PathLike, *,
                complete: Callable[[Path], bool] | None = None) -> Path:
    """Rename the folder ``staged`` to ``target`` (same file system: a reader sees all of it or
    nothing). When ``target`` exists: if ``complete(target)`` says it is whole (another process got
    there first) ``staged`` is dropped; otherwise it is replaced, or without ``complete`` refused."""
    staged, target = Path(staged), Path(target)
    with writing(target):
        target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.rename(staged, target)
        return target
    except OSError:
        if not target.exists():
            raise
    if complete is None:
        raise DownloadError(f"{target} already exists; move it away first")
    if complete(target):
        shutil.rmtree(staged, ignore_errors=True)
        return target
    shutil.rmtree(target, ignore_errors=True)
    with writing(target):
        os.rename(staged, target)
    return target


def unpack(archive: str | os.PathLike, source: str, target: str | os.PathLike, *,
           finish: Callable[[Path], None] | None = None) -> Path:
    """Unpack the folder ``source`` of ``archive`` (a tar, compressed or not, or a zip; ``*``
    matches one path component, e.g. ``*/CamVid`` in a GitHub archive) to the folder ``target``;
    return ``target``.

    Every member is checked before anything is written: an absolute path, a ``..``, a link pointing
    outside or a special file refuses the whole archive (:class:`UnsafeArchiveError`); tar members
    are extracted with ``filter="data"`` too. The folder is unpacked into a staging folder beside
    ``target``, ``finish(folder)`` runs on it there (checks, extra files; raising aborts), and it
    is renamed to ``target`` last. ``target`` must not exist.
    """
    archive, target = Path(archive), Path(target)
    if target.exists():
        raise DownloadError(f"{target} already exists; move it away first")
    handle, members = _open_archive(archive)
    with handle:
        bad = [(m, why) for m in members if (why := _unsafe(m))]
        if bad:
            member, why = bad[0]
            raise UnsafeArchiveError(f"{archive}: refused: member {member.name!r}: {why} "
                                     f"({len(bad)} unsafe member{'s' if len(bad) > 1 else ''}; nothing unpacked)")
        root = _kept_root(members, source, archive)
        with staging(target.parent) as stage:
            try:
                _extract(handle, members, root, stage)
            except (tarfile.TarError, zipfile.BadZipFile, EOFError) as exc:
                raise DownloadError(f"{archive}: cannot unpack it ({first_line(exc)}); nothing unpacked") from None
            except OSError as exc:  # the disk, not the archive: a WriteError (the archive is worth keeping)
                raise write_error(exc.filename or target.parent, exc) from None
            folder = stage / root
            if finish is not None:
                finish(folder)
            return publish_dir(folder, target)


def tree_digest(folder: str | os.PathLike, *, skip: tuple[str, ...] = ()) -> str:
    """Return ``sha256:HEX`` of the files under ``folder``: the SHA-256 of the sorted lines
    ``<path relative to folder, POSIX>\\t<sha256 of the file>``; paths in ``skip`` are left out."""
    folder = Path(folder)
    lines = sorted(f"{p.relative_to(folder).as_posix()}\t{file_digest(p)}\n"
                   for p in folder.rglob("*") if p.is_file() and p.relative_to(folder).as_posix() not in skip)
    return "sha256:" + hashlib.sha256("".join(lines).encode("utf-8")).hexdigest()


@contextlib.contextmanager
def locked(name: str) -> Iterator[None]:
    """Hold the exclusive lock ``name`` (a file in ``<cache>/locks/``) for the block, so that
    processes started together (``torchrun``) download a file once; where locks are unavailable
    (no ``fcntl``, an unwritable cache) the block runs unlocked."""
    try:
        import fcntl
    except ImportError:  # Windows
        yield
        return
    path = cache_dir() / "locks" / f"{name}.lock"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(path, "a+")
    except OSError:
        yield
        return
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


__all__ = ["DownloadError", "MIRROR_ENV", "Remote", "UnsafeArchiveError", "about", "check_file", "fetch",
           "file_digest", "hand_hint", "locked", "mirror_url", "publish_dir", "recorded_hash", "split_hash",
           "staging", "tree_digest", "unpack"]
