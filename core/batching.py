"""Length-sorted batching: items of similar length share a batch, so little compute goes to padding.

The caller gets results back in its own order. Sorting matters on CPU: a batch costs as much as its
longest item times its size, so one 300-token text in a batch of 5-token texts makes the whole
batch 60 times dearer than it needs to be.
"""

from collections.abc import Callable, Iterable, Sequence
from typing import TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


def check_batch_size(batch_size) -> int:
    """Validate `batch_size` once, with a message that names it."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int):
        raise TypeError(f"batch_size must be an int, got {type(batch_size).__name__}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    return batch_size


def sorted_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Indices of the items, grouped into batches of at most `batch_size`, longest items first.

    Longest first means the largest allocation happens at once, and a memory error shows up in the
    first batch rather than the last. Ties keep the caller's order (a stable sort), so results do
    not depend on anything but the lengths.
    """
    check_batch_size(batch_size)
    order = sorted(range(len(lengths)), key=lambda index: -lengths[index])
    return [order[start:start + batch_size] for start in range(0, len(order), batch_size)]


def run_in_sorted_batches(
    items: Sequence[Item],
    lengths: Sequence[int],
    batch_size: int,
    run_batch: Callable[[list[Item]], Iterable[Result]],
) -> list[Result]:
    """Run `run_batch` on length-sorted batches of `items` and return one result per item, in order."""
    if len(items) != len(lengths):
        raise ValueError(f"got {len(items)} items but {len(lengths)} lengths")
    results: list = [None] * len(items)
    for batch in sorted_batches(lengths, batch_size):
        batch_results = list(run_batch([items[index] for index in batch]))
        if len(batch_results) != len(batch):
            raise RuntimeError(f"run_batch returned {len(batch_results)} results for {len(batch)} items")
        for index, result in zip(batch, batch_results):
            results[index] = result
    return results
