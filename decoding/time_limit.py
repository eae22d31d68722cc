"""max_time: stop every row after the step during which the call has run longer than `max_time` seconds.

As 4.57.6's MaxTimeCriteria: the clock starts when generate() starts, is read after each step, and
when it has run out every row is finished at once (beam search then ranks what it has). Wall-clock
time, so the output depends on the machine's speed; the tests use 0 seconds (one step) or plenty.
"""

import time

import torch


class TimeLimited:
    """Stop criteria that also finish every row once `max_time` seconds have passed since `started`.

    Wraps the loop's StopCriteria: calling it gives (rows,) bool, other attributes are the wrapped one's.
    """

    def __init__(self, stop, max_time: float, started: float):
        self.stop = stop
        self.max_time = max_time
        self.started = started

    def __call__(self, sequences: torch.Tensor) -> torch.Tensor:
        finished = self.stop(sequences)
        if time.time() - self.started > self.max_time:
            return torch.ones_like(finished, dtype=torch.bool)
        return finished

    def __getattr__(self, name):
        return getattr(self.stop, name)


def with_time_limit(stop, max_time: float | None, started: float):
    """`stop` itself without a max_time, else the same criteria with the time limit added."""
    return stop if max_time is None else TimeLimited(stop, max_time, started)
