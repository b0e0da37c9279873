"""Progress within an epoch: one line redrawn in place on a terminal, a plain line now and then otherwise."""

import sys
import time

REDRAW_SECONDS = 0.2
# A log file or pipe gets a progress line only when an epoch is slow enough to leave
# it this long without output, so short epochs log just their summary line.
LOG_SECONDS = 10.0


class Progress:

    def __init__(self, label, total_steps, stream=None, clock=time.monotonic):
        self.label = label
        self.total_steps = total_steps
        self.stream = stream or sys.stdout
        self.interactive = self.stream.isatty()
        self.clock = clock
        self.last_output = clock()
        self.line_width = 0

    def update(self, step, status):
        """Report that step of total_steps is done; status is a short text such as the running loss."""
        now = self.clock()
        line = f"{self.label}  step {step}/{self.total_steps}  {status}"
        if self.interactive and now - self.last_output >= REDRAW_SECONDS:
            self.stream.write("\r" + line.ljust(self.line_width))
            self.stream.flush()
            self.line_width = max(self.line_width, len(line))
            self.last_output = now
        elif not self.interactive and now - self.last_output >= LOG_SECONDS:
            print(line, file=self.stream, flush=True)
            self.last_output = now

    def finish(self):
        """Clear the redrawn line, so that the epoch summary starts on an empty line."""
        if self.interactive and self.line_width:
            self.stream.write("\r" + " " * self.line_width + "\r")
            self.stream.flush()
