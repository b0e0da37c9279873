"""keep_freed_memory: glibc accepts the malloc settings on Linux."""

import platform
import sys

import pytest

from train.memory import keep_freed_memory


@pytest.mark.skipif(not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc", reason="needs Linux with glibc")
def test_keep_freed_memory_on_glibc():
    assert keep_freed_memory() is True


@pytest.mark.skipif(sys.platform.startswith("linux"), reason="only for systems other than Linux")
def test_keep_freed_memory_elsewhere_does_nothing():
    assert keep_freed_memory() is False
