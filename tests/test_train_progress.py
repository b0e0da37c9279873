"""Progress lines: redrawn with a carriage return on a terminal, plain and sparse in a log."""

import io

from train.progress import Progress


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_log_gets_line_after_ten_seconds():
    stream, clock = io.StringIO(), Clock()
    progress = Progress("epoch 1/3", 400, stream, clock)
    clock.now += 9.9
    progress.update(100, "loss 0.5000")
    assert stream.getvalue() == ""
    clock.now += 0.1
    progress.update(101, "loss 0.4000")
    clock.now += 1.0
    progress.update(102, "loss 0.3000")
    progress.finish()
    assert stream.getvalue() == "epoch 1/3  step 101/400  loss 0.4000\n"


def test_terminal_line_redrawn_and_cleared():
    stream, clock = Terminal(), Clock()
    progress = Progress("epoch 2/3", 10, stream, clock)
    clock.now += 0.25
    progress.update(1, "loss 1.2500")
    clock.now += 0.125
    progress.update(2, "loss 1.0000")  # within 0.2 s of the last redraw, so skipped
    clock.now += 0.125
    progress.update(3, "loss 0.5")
    progress.finish()
    first = "epoch 2/3  step 1/10  loss 1.2500"
    second = "epoch 2/3  step 3/10  loss 0.5"
    # The shorter second line is padded with spaces to cover the end of the first.
    assert stream.getvalue() == "\r" + first + "\r" + second.ljust(len(first)) + "\r" + " " * len(first) + "\r"
