"""pixelwise.download against a loopback server: resume, hashes, mirrors, dead links, safe unpacking."""

import hashlib
import io
import tarfile
import time
import zipfile

import pytest

from loopback import server  # noqa: F401  (the fixture)
from pixelwise.download import (
    MIRROR_ENV,
    DownloadError,
    Remote,
    UnsafeArchiveError,
    about,
    fetch,
    publish_dir,
    recorded_hash,
    tree_digest,
    unpack,
)

DATA = bytes(range(256)) * 4096  # 1 MiB: several read chunks


def _remote(server, name="file.bin", data=DATA, algorithm="sha256", **kw):
    server.files[name] = data
    return Remote(server.url(name), name, f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}", len(data), **kw)


def test_clean_download_is_checked_and_named(server, tmp_path):
    remote = _remote(server, algorithm="md5")
    path = fetch(remote, tmp_path / "d", progress=False)
    assert path == tmp_path / "d" / "file.bin" and path.read_bytes() == DATA
    assert sorted(p.name for p in path.parent.iterdir()) == ["file.bin"]
    assert fetch(remote, tmp_path / "d") == path and server.names() == ["file.bin"]  # there: no request


def test_dropped_connection_is_resumed_with_range(server, tmp_path):
    remote = _remote(server)
    server.drop_once.add("file.bin")
    path = fetch(remote, tmp_path, progress=False)
    assert path.read_bytes() == DATA
    (first, r1), (second, r2) = server.requests
    assert r1 is None and r2.startswith("bytes=") and int(r2[6:-1]) > 0


def test_a_part_left_by_an_earlier_run_is_resumed(server, tmp_path):
    remote = _remote(server)
    (tmp_path / "file.bin.part").write_bytes(DATA[:1000])
    assert fetch(remote, tmp_path, progress=False).read_bytes() == DATA
    assert server.requests == [("file.bin", "bytes=1000-")]


def test_a_server_ignoring_range_restarts_the_file(server, tmp_path):
    remote = _remote(server)
    server.ignore_range.add("file.bin")
    (tmp_path / "file.bin.part").write_bytes(b"x" * 1000)
    assert fetch(remote, tmp_path, progress=False).read_bytes() == DATA


def test_wrong_checksum_is_refused_and_nothing_kept(server, tmp_path):
    server.files["file.bin"] = DATA
    remote = Remote(server.url("file.bin"), "file.bin", "md5:" + "0" * 32, len(DATA))
    with pytest.raises(DownloadError, match=r"does not match the published md5:0+") as err:
        fetch(remote, tmp_path / "d", progress=False)
    assert "\n" not in str(err.value) and "--from FILE" in str(err.value)
    assert list((tmp_path / "d").iterdir()) == []


def test_404_is_one_line_naming_url_file_and_what_to_do(server, tmp_path):
    remote = Remote(server.url("gone.tar"), "gone.tar", None, 2 << 30)
    with pytest.raises(DownloadError) as err:
        fetch(remote, tmp_path / "d", progress=False)
    msg = str(err.value)
    assert "\n" not in msg and "HTTP 404" in msg and remote.url in msg and "gone.tar (about 2.0 GB)" in msg
    assert f"put it at {tmp_path / 'd' / 'gone.tar'}" in msg and MIRROR_ENV in msg and "--from FILE" in msg
    assert list((tmp_path / "d").iterdir()) == [] and server.names() == ["gone.tar"]  # 4xx: no retry


def test_a_server_that_never_answers_fails_within_the_timeout(server, tmp_path):
    server.hang.add("slow.bin")
    start = time.perf_counter()
    with pytest.raises(DownloadError, match=r"no answer within 0.3 s; download slow.bin") as err:
        fetch(Remote(server.url("slow.bin"), "slow.bin"), tmp_path, timeout=0.3, retries=1, progress=False)
    assert time.perf_counter() - start < 5 and "\n" not in str(err.value)
    assert len(server.requests) == 2 and list(tmp_path.iterdir()) == []


def test_mirror_and_url_override_where_not_what(server, tmp_path, monkeypatch):
    remote = Remote("http://127.0.0.1:9/nowhere/file.bin", "file.bin", f"sha256:{hashlib.sha256(DATA).hexdigest()}")
    server.files["file.bin"] = DATA
    monkeypatch.setenv(MIRROR_ENV, server.url(""))
    assert fetch(remote, tmp_path / "a", progress=False).read_bytes() == DATA
    server.files["other.bin"] = DATA[:10]
    with pytest.raises(DownloadError, match="does not match"):
        fetch(remote, tmp_path / "b", url=server.url("other.bin"), progress=False)
    folder = tmp_path / "mirror"
    folder.mkdir()
    (folder / "file.bin").write_bytes(DATA)
    monkeypatch.setenv(MIRROR_ENV, str(folder))  # a local folder works as a mirror too
    assert fetch(remote, tmp_path / "c", progress=False).read_bytes() == DATA


def test_from_file_is_checked_where_it_is(tmp_path):
    given = tmp_path / "mine.bin"
    given.write_bytes(DATA)
    remote = Remote("http://127.0.0.1:9/x", "file.bin", f"sha1:{hashlib.sha1(DATA).hexdigest()}")
    assert fetch(remote, tmp_path / "d", from_file=given) == given
    given.write_bytes(DATA[:-1])
    with pytest.raises(DownloadError, match="sha1 .* is not the published"):
        fetch(remote, tmp_path / "d", from_file=given)
    with pytest.raises(DownloadError, match="no such file"):
        fetch(remote, tmp_path / "d", from_file=tmp_path / "missing")


def test_unpublished_hash_is_recorded_at_first_download(server, tmp_path):
    server.files["w.bin"] = DATA
    remote = Remote(server.url("w.bin"), "w.bin")
    path = fetch(remote, tmp_path, record=True, progress=False)
    assert recorded_hash(path) == f"sha256:{hashlib.sha256(DATA).hexdigest()}"
    path.unlink()
    server.files["w.bin"] = DATA[::-1]  # the file changed upstream
    with pytest.raises(DownloadError, match="does not match the recorded sha256"):
        fetch(remote, tmp_path, record=True, progress=False)


def _tar(path, entries, mode="w:gz"):
    """Write a tar of ``entries``: (name, bytes) files, (name, "->target") symlinks, (name, None) folders."""
    with tarfile.open(path, mode) as tar:
        for name, content in entries:
            info = tarfile.TarInfo(name)
            if content is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            elif isinstance(content, str):
                info.type, info.linkname = tarfile.SYMTYPE, content[2:]
                tar.addfile(info)
            else:
                info.size = len(content)
                tar.addfile(info, io.BytesIO(content))
    return path


def test_unpack_keeps_one_folder_and_publishes_it_whole(tmp_path):
    archive = _tar(tmp_path / "a.tgz", [("Top-master/README", b"r"), ("Top-master/Data/x/1.txt", b"1"),
                                        ("Top-master/Data/2.txt", b"2"), ("Top-master/Data/link", "->2.txt")])
    seen = []
    out = unpack(archive, "*/Data", tmp_path / "out" / "Data", finish=lambda folder: seen.append(folder.name))
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) == ["2.txt", "link", "x", "x/1.txt"]
    assert seen == ["Data"] and (out / "link").read_bytes() == b"2"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["Data"]  # no staging folder left
    with pytest.raises(DownloadError, match="already exists"):
        unpack(archive, "*/Data", out)


@pytest.mark.parametrize("bad", [("Top/../../evil.txt", b"x"), ("/abs/evil.txt", b"x"), ("Top/link", "->../../etc"),
                                 ("Top/abs-link", "->/etc/passwd")])
def test_unsafe_members_refuse_the_whole_archive(tmp_path, bad):
    archive = _tar(tmp_path / "bad.tar", [("Top/ok.txt", b"ok"), bad], mode="w")
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(UnsafeArchiveError, match=r"refused: member .*nothing unpacked") as err:
        unpack(archive, "Top", dest / "Top")
    assert "\n" not in str(err.value)
    assert list(dest.iterdir()) == [] and not (tmp_path / "evil.txt").exists()


def test_finish_failure_leaves_nothing(tmp_path):
    archive = _tar(tmp_path / "a.tar", [("Top/a.txt", b"a")], mode="w")

    def refuse(folder):
        raise DownloadError("wrong files")

    with pytest.raises(DownloadError, match="wrong files"):
        unpack(archive, "Top", tmp_path / "out" / "Top", finish=refuse)
    assert list((tmp_path / "out").iterdir()) == []


def test_zip_archives_and_their_checks(tmp_path):
    good = tmp_path / "good.zip"
    with zipfile.ZipFile(good, "w") as zf:
        zf.writestr("Repo-main/CamVid/train/a.png", b"png")
        zf.writestr("Repo-main/other.txt", b"o")
    out = unpack(good, "*/CamVid", tmp_path / "CamVid")
    assert (out / "train" / "a.png").read_bytes() == b"png"
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("Repo-main/CamVid/a.png", b"png")
        zf.writestr("../evil.txt", b"x")
    with pytest.raises(UnsafeArchiveError, match="'../evil.txt'"):
        unpack(bad, "*/CamVid", tmp_path / "x" / "CamVid")
    not_archive = tmp_path / "plain.tar"
    not_archive.write_bytes(b"hello")
    with pytest.raises(DownloadError, match="not a readable tar or zip archive"):
        unpack(not_archive, "*", tmp_path / "y")


def test_missing_folder_in_archive_is_named(tmp_path):
    archive = _tar(tmp_path / "a.tar", [("Top/a.txt", b"a")], mode="w")
    with pytest.raises(DownloadError, match=r"no folder matching \*/CamVid/"):
        unpack(archive, "*/CamVid", tmp_path / "CamVid")


def test_tree_digest_and_publish(tmp_path):
    a = tmp_path / "a"
    (a / "s").mkdir(parents=True)
    (a / "s" / "f").write_bytes(b"1")
    (a / "g").write_bytes(b"2")
    lines = sorted([f"s/f\t{hashlib.sha256(b'1').hexdigest()}\n", f"g\t{hashlib.sha256(b'2').hexdigest()}\n"])
    assert tree_digest(a) == "sha256:" + hashlib.sha256("".join(lines).encode()).hexdigest()
    assert tree_digest(a, skip=("g",)) != tree_digest(a)
    b = tmp_path / "b"
    b.mkdir()
    (b / "new").write_bytes(b"n")
    assert publish_dir(b, a, complete=lambda t: (t / "g").is_file()) == a and not b.exists()  # kept: complete
    assert (a / "g").exists()


def test_about_sizes():
    assert about(1_999_639_040) == "about 1.9 GB" and about(553_433_881) == "about 528 MB" and about(None) == "size unknown"
