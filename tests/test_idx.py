import gzip

import numpy as np
import pytest

import digits
from digits import IdxFormatError, load_mnist, read_idx


def idx_bytes(array, type_byte=0x08):
    header = bytes([0, 0, type_byte, array.ndim]) + b"".join(size.to_bytes(4, "big") for size in array.shape)
    return header + array.astype(np.uint8).tobytes()


def write(path, data, compress=False):
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


@pytest.mark.parametrize("compress", [False, True])
def test_read_idx_tiny_images(tmp_path, compress):
    images = np.arange(8, dtype=np.uint8).reshape(2, 2, 2)
    path = write(tmp_path / "images", idx_bytes(images), compress)

    result = read_idx(path)

    assert result.shape == (2, 2, 2)
    assert result.tolist() == [[[0, 1], [2, 3]], [[4, 5], [6, 7]]]


def test_read_idx_handmade_label_bytes(tmp_path):
    raw = bytes.fromhex("00000801" "00000003") + bytes([7, 0, 9])

    labels = read_idx(write(tmp_path / "labels", raw))

    assert labels.tolist() == [7, 0, 9]


@pytest.mark.parametrize("raw, message", [
    (bytes.fromhex("000108010000000100"), "bad magic number"),
    (bytes.fromhex("00000d010000000100"), "element type 0x0d"),
    (bytes.fromhex("0000080100000003") + bytes([1, 2]), "truncated"),
    (bytes.fromhex("0000080100000002") + bytes([1, 2, 3]), "longer than its header"),
    (bytes.fromhex("00000803000000010000"), "truncated header"),
    (bytes.fromhex("0000"), "too short"),
    (bytes.fromhex("00000800"), "zero dimensions"),
])
def test_read_idx_rejects_corrupt_file(tmp_path, raw, message):
    path = write(tmp_path / "bad-idx", raw)

    with pytest.raises(IdxFormatError, match=message) as raised:
        read_idx(path)

    assert str(path) in str(raised.value)


def test_read_idx_rejects_truncated_gzip(tmp_path):
    data = gzip.compress(idx_bytes(np.zeros((10, 28, 28))))
    path = write(tmp_path / "cut.gz", data[: len(data) // 2])

    with pytest.raises(IdxFormatError, match="corrupt or truncated gzip"):
        read_idx(path)


def make_mnist_folder(folder, images, labels, compress=True):
    suffix = ".gz" if compress else ""
    write(folder / f"t10k-images-idx3-ubyte{suffix}", idx_bytes(images), compress)
    write(folder / f"t10k-labels-idx1-ubyte{suffix}", idx_bytes(labels), compress)


def test_load_mnist_reads_split(tmp_path):
    images = np.full((3, 28, 28), 5)
    make_mnist_folder(tmp_path, images, np.array([1, 2, 3]), compress=False)

    loaded_images, loaded_labels = load_mnist(tmp_path, "test")

    assert loaded_images.shape == (3, 28, 28)
    assert loaded_labels.tolist() == [1, 2, 3]


def test_load_mnist_rejects_label_out_of_range(tmp_path):
    make_mnist_folder(tmp_path, np.zeros((2, 28, 28)), np.array([3, 12]))

    with pytest.raises(IdxFormatError, match="labels must be digits 0-9, found 12"):
        load_mnist(tmp_path, "test")


def test_load_mnist_rejects_count_mismatch(tmp_path):
    make_mnist_folder(tmp_path, np.zeros((3, 28, 28)), np.array([3, 1]))

    with pytest.raises(IdxFormatError, match="has 3 images but .* has 2 labels"):
        load_mnist(tmp_path, "test")


def test_load_mnist_rejects_wrong_image_size(tmp_path):
    make_mnist_folder(tmp_path, np.zeros((2, 20, 20)), np.array([3, 1]))

    with pytest.raises(IdxFormatError, match=r"expected images of shape \[N, 28, 28\], got \[2, 20, 20\]"):
        load_mnist(tmp_path, "test")


def test_load_mnist_names_missing_file(tmp_path):
    with pytest.raises(IdxFormatError, match="t10k-images-idx3-ubyte.*not found"):
        load_mnist(tmp_path, "test")


def test_load_mnist_real_test_set(mnist_dir):
    images, labels = digits.load_mnist(mnist_dir, "test")

    assert images.shape == (10000, 28, 28)
    assert labels[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]


def test_read_idx_rejects_forged_huge_shape(tmp_path):
    raw = bytes.fromhex("00000804") + (65536).to_bytes(4, "big") * 4

    with pytest.raises(IdxFormatError, match="truncated"):
        read_idx(write(tmp_path / "forged", raw))


def test_load_mnist_rejects_empty_split(tmp_path):
    make_mnist_folder(tmp_path, np.zeros((0, 28, 28)), np.zeros(0))

    with pytest.raises(IdxFormatError, match="contains no labels"):
        load_mnist(tmp_path, "test")
