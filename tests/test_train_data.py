"""Finding and downloading MNIST: checksums accepted and rejected, against a server on 127.0.0.1."""

import functools
import gzip
import hashlib
import http.server
import threading

import pytest

from train.data import DataNotFoundError, DownloadError, download_mnist, find_mnist, idx_sha256, load

# sha256 of the four uncompressed MNIST files (test images, test labels and
# training labels are the original bytes, training images a close rebuild).
SHARED_MNIST_SHA256 = {
    "train-images": "c864bc56469d86d36d7e55ea2b0d282fb5fecab59cce2a8fc261ed93ecf402d0",
    "train-labels": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "test-images": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "test-labels": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}


class CountingHandler(http.server.SimpleHTTPRequestHandler):
    """Serves a folder and counts the requests for each path."""

    def log_message(self, format, *args):
        pass

    def do_GET(self):
        self.server.requests[self.path] = self.server.requests.get(self.path, 0) + 1
        super().do_GET()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A folder served over HTTP on 127.0.0.1: mnist/ contains two small gzip files, corrupt/ a damaged copy of one."""
    root = tmp_path_factory.mktemp("mirror")
    files = {
        "first.gz": gzip.compress(b"first file", mtime=0),
        "second.gz": gzip.compress(b"second file", mtime=0),
    }
    (root / "mnist").mkdir()
    for name, content in files.items():
        (root / "mnist" / name).write_bytes(content)
    (root / "corrupt").mkdir()
    (root / "corrupt" / "first.gz").write_bytes(b"not the file")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(CountingHandler, directory=str(root)))
    server.url = f"http://127.0.0.1:{server.server_address[1]}/"
    server.files = files
    server.checksums = {name: hashlib.md5(content).hexdigest() for name, content in files.items()}
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def mirror(server):
    server.requests = {}
    return server


def test_download_accepts_good_checksum(mirror, tmp_path):
    cache = tmp_path / "cache"
    download_mnist(cache, [mirror.url + "mnist/"], mirror.checksums, log=lambda message: None)
    for name, content in mirror.files.items():
        assert (cache / name).read_bytes() == content
    assert sorted(path.name for path in cache.iterdir()) == ["first.gz", "second.gz"]


def test_download_rejects_bad_checksum(mirror, tmp_path):
    cache = tmp_path / "cache"
    messages = []
    checksums = {"first.gz": "0" * 32}
    with pytest.raises(DownloadError, match=r"download of first\.gz failed: .*md5 .* does not match the published 0{32}"):
        download_mnist(cache, [mirror.url + "mnist/"], checksums, log=messages.append)
    assert list(cache.iterdir()) == []
    assert any("rejected" in message and "removed" in message for message in messages)


def test_download_error_says_what_to_do(mirror, tmp_path):
    with pytest.raises(DownloadError, match="pass --data DIR or set MNIST_DIR"):
        download_mnist(tmp_path / "cache", [mirror.url + "missing/"], mirror.checksums, log=lambda message: None)


def test_download_falls_back_to_next_mirror(mirror, tmp_path):
    cache = tmp_path / "cache"
    messages = []
    download_mnist(cache, [mirror.url + "missing/", mirror.url + "mnist/"], mirror.checksums, log=messages.append)
    assert (cache / "first.gz").read_bytes() == mirror.files["first.gz"]
    assert mirror.requests["/missing/first.gz"] == 1
    assert any("404" in message for message in messages)


def test_download_falls_back_after_bad_checksum(mirror, tmp_path):
    cache = tmp_path / "cache"
    checksums = {"first.gz": mirror.checksums["first.gz"]}
    download_mnist(cache, [mirror.url + "corrupt/", mirror.url + "mnist/"], checksums, log=lambda message: None)
    assert (cache / "first.gz").read_bytes() == mirror.files["first.gz"]
    assert mirror.requests == {"/corrupt/first.gz": 1, "/mnist/first.gz": 1}


def test_download_skips_cached_file(mirror, tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "first.gz").write_bytes(mirror.files["first.gz"])
    download_mnist(cache, [mirror.url + "mnist/"], mirror.checksums, log=lambda message: None)
    assert mirror.requests == {"/mnist/second.gz": 1}


def test_download_replaces_corrupt_cached_file(mirror, tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "first.gz").write_bytes(b"truncated")
    messages = []
    download_mnist(cache, [mirror.url + "mnist/"], {"first.gz": mirror.checksums["first.gz"]}, log=messages.append)
    assert (cache / "first.gz").read_bytes() == mirror.files["first.gz"]
    assert "does not match the published" in messages[0]


def test_find_prefers_data_argument(tmp_path):
    given, from_environment = tmp_path / "given", tmp_path / "environment"
    given.mkdir()
    from_environment.mkdir()
    assert find_mnist(str(given), environ={"MNIST_DIR": str(from_environment)}) == given


def test_find_uses_environment(tmp_path):
    assert find_mnist(None, environ={"MNIST_DIR": str(tmp_path)}) == tmp_path


def test_find_rejects_missing_folder(tmp_path):
    with pytest.raises(DataNotFoundError, match=r"--data .*missing is not a folder"):
        find_mnist(str(tmp_path / "missing"), environ={})
    with pytest.raises(DataNotFoundError, match=r"MNIST_DIR .*missing is not a folder"):
        find_mnist(None, environ={"MNIST_DIR": str(tmp_path / "missing")})


def test_find_downloads_into_xdg_cache(mirror, tmp_path):
    environ = {"XDG_CACHE_HOME": str(tmp_path / "xdg")}
    directory = find_mnist(None, environ=environ, mirrors=[mirror.url + "mnist/"], checksums=mirror.checksums,
                           log=lambda message: None)
    assert directory == tmp_path / "xdg" / "digits" / "mnist"
    assert (directory / "second.gz").read_bytes() == mirror.files["second.gz"]


def test_sha256_of_uncompressed_files(mnist_dir):
    assert idx_sha256(mnist_dir) == SHARED_MNIST_SHA256


def test_load_and_subset(mnist_dir):
    mnist = load(mnist_dir)
    assert mnist.train_images.shape == (60000, 28, 28)
    assert mnist.test_labels.shape == (10000,)
    subset = mnist.subset(20, 10)
    assert subset.train_images.shape == (20, 28, 28)
    assert subset.test_labels.shape == (10,)
    assert subset.sha256 == SHARED_MNIST_SHA256
