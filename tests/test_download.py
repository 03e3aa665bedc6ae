"""Downloads against a local HTTP server on 127.0.0.1 serving an archive the test builds."""

from __future__ import annotations

import dataclasses
import hashlib
import http.server
import io
import threading
import zipfile

import pytest

from mfrec.data import DownloadError, load_movielens
from mfrec.data.download import download_file, fetch_archive
from mfrec.data.registry import RELEASES

RATINGS = "userId,movieId,rating,timestamp\n1,10,4.0,1\n1,193609,3.5,2\n2,10,5.0,3\n"
MOVIES = 'movieId,title,genres\n10,"GoldenEye, 007 (1995)",Action\n193609,Late Film (2018),Drama\n'


def build_zip(folder: str = "ml-latest-small", ratings: str = RATINGS) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr(f"{folder}/ratings.csv", ratings)
        z.writestr(f"{folder}/movies.csv", MOVIES)
    return buf.getvalue()


class Handler(http.server.BaseHTTPRequestHandler):
    routes: dict[str, tuple[int, bytes, int | None]] = {}

    def do_GET(self):  # noqa: N802 (http.server's name)
        status, body, length = self.routes.get(self.path, (404, b"not found", None))
        self.send_response(status)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", Handler.routes
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("MFREC_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("MFREC_DATA", raising=False)


def leftovers(root):
    return sorted(p.name for p in root.rglob("*")) if root.exists() else []


def test_download_verifies_and_renames(server, tmp_path):
    base, routes = server
    body = build_zip()
    routes["/ok.zip"] = (200, body, None)
    dest = download_file(
        f"{base}/ok.zip", tmp_path / "d" / "a.zip",
        md5=hashlib.md5(body).hexdigest(), sha256=hashlib.sha256(body).hexdigest(),
    )  # fmt: skip
    assert dest.read_bytes() == body
    assert leftovers(tmp_path / "d") == ["a.zip"]


@pytest.mark.parametrize(
    ("route", "status", "length", "md5", "message"),
    [
        ("/bad-sum.zip", 200, None, "0" * 32, "MD5 .* does not match"),
        ("/truncated.zip", 200, 10**6, None, "truncated|could not download"),
        ("/missing.zip", 404, None, None, "404"),
    ],
)
def test_failed_download_leaves_nothing(server, tmp_path, route, status, length, md5, message):
    base, routes = server
    if route != "/missing.zip":
        routes[route] = (status, build_zip(), length)
    with pytest.raises(DownloadError, match=message):
        download_file(f"{base}{route}", tmp_path / "d" / "a.zip", md5=md5)
    assert leftovers(tmp_path / "d") == []


def test_interrupted_download_leaves_nothing(server, tmp_path, monkeypatch):
    base, routes = server
    routes["/slow.zip"] = (200, build_zip(), None)

    import mfrec.data.download as dl

    monkeypatch.setattr(dl, "CHUNK", 7)

    def open_interrupting(path, mode):
        f = open(path, mode)
        calls = {"n": 0}
        write = f.write

        def write_then_interrupt(b):
            calls["n"] += 1
            if calls["n"] == 3:
                raise KeyboardInterrupt
            return write(b)

        f.write = write_then_interrupt
        return f

    monkeypatch.setattr(dl, "open", open_interrupting, raising=False)
    with pytest.raises(KeyboardInterrupt):
        fetch_archive(f"{base}/slow.zip", tmp_path / "root", "x", "ml-latest-small", ())
    assert leftovers(tmp_path / "root") == []


def test_archive_without_the_expected_files(server, tmp_path):
    base, routes = server
    routes["/wrong.zip"] = (200, build_zip(folder="other"), None)
    with pytest.raises(DownloadError, match="lacks ml-latest-small/ratings.csv"):
        fetch_archive(f"{base}/wrong.zip", tmp_path, "x", "ml-latest-small", ("ratings.csv",))
    assert leftovers(tmp_path) == []
    routes["/notzip.zip"] = (200, b"PK\x03\x04 this is not a zip", None)
    with pytest.raises(DownloadError, match="could not unpack"):
        fetch_archive(f"{base}/notzip.zip", tmp_path, "x", "ml-latest-small", ())
    assert leftovers(tmp_path) == []


def test_load_release_end_to_end(server, tmp_path, monkeypatch):
    """A registry entry pointed at the local archive: downloaded once, then found in the cache."""
    base, routes = server
    body = build_zip()
    routes["/ml-latest-small.zip"] = (200, body, None)
    fake = dataclasses.replace(
        RELEASES["ml-latest-small"], md5=hashlib.md5(body).hexdigest(), n_ratings=3
    )
    monkeypatch.setitem(RELEASES, "ml-latest-small", fake)
    url = f"{base}/ml-latest-small.zip"
    table = load_movielens("ml-latest-small", url=url)
    assert len(table) == 3
    assert table.item_ids.tolist() == [10, 193609]
    assert table.titles[10] == "GoldenEye, 007 (1995)"
    assert (tmp_path / "cache" / "ml-latest-small" / "ratings.csv").is_file()
    del routes["/ml-latest-small.zip"]  # a second load must not touch the network
    assert len(load_movielens("ml-latest-small", url=url)) == 3


def test_release_checksum_mismatch_and_count_mismatch(server, tmp_path, monkeypatch):
    base, routes = server
    body = build_zip()
    routes["/ml-latest-small.zip"] = (200, body, None)
    url = f"{base}/ml-latest-small.zip"
    fake = dataclasses.replace(RELEASES["ml-latest-small"], md5="f" * 32)
    monkeypatch.setitem(RELEASES, "ml-latest-small", fake)
    with pytest.raises(DownloadError, match="MD5"):
        load_movielens("ml-latest-small", url=url)
    assert leftovers(tmp_path / "cache") == []
    fake = dataclasses.replace(fake, md5=hashlib.md5(body).hexdigest(), n_ratings=100_836)
    monkeypatch.setitem(RELEASES, "ml-latest-small", fake)
    with pytest.raises(ValueError, match="3 ratings, but ml-latest-small has 100,836"):
        load_movielens("ml-latest-small", url=url)
    with pytest.raises(ValueError, match="unknown MovieLens release 'ml-5m'"):
        load_movielens("ml-5m")


@pytest.mark.parametrize(
    ("name", "folder", "encoding"),
    [("ml-1m", "ml-1m", "latin-1"), ("ml-10m", "ml-10M100K", "utf-8")],
)
def test_dat_releases_found_on_disk(tmp_path, monkeypatch, name, folder, encoding):
    """`::` releases: ratings.dat rows and movies.dat titles, under the archive's folder name."""
    root = tmp_path / folder
    root.mkdir()
    (root / "ratings.dat").write_text(
        "1::122::5::838985046\n1::185::0.5::838983525\n7::122::1::9\n"
    )
    titles = "122::Boomerang (1992)::Comedy|Romance\n185::Net, The (1995)::Action\n"
    (root / "movies.dat").write_bytes(titles.replace("Net", "Nét").encode(encoding))
    monkeypatch.setitem(RELEASES, name, dataclasses.replace(RELEASES[name], n_ratings=3))
    if name == "ml-1m":
        with pytest.raises(ValueError, match=r"ratings.dat:2: rating '0.5' is outside .*\[1, 5\]"):
            load_movielens(name, tmp_path, download=False)
        (root / "ratings.dat").write_text(
            "1::122::5::838985046\n1::185::4::838983525\n7::122::1::9\n"
        )
    table = load_movielens(name, tmp_path, download=False)
    assert table.user_ids.tolist() == [1, 7] and table.item_ids.tolist() == [122, 185]
    assert table.titles == {122: "Boomerang (1992)", 185: "Nét, The (1995)"}
    assert table.timestamps.tolist()[:2] == [838985046, 838983525]
