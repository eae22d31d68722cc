"""Length-sorted batches waste little padding and give results back in the caller's order."""

import pytest

from core import sorted_batches
from core.batching import check_batch_size, run_in_sorted_batches
from core.checks import as_batch, check_text


def test_batches_hold_items_of_similar_length_longest_first():
    lengths = [5, 300, 7, 290, 6, 280]
    assert sorted_batches(lengths, 2) == [[1, 3], [5, 2], [4, 0]]
    # With a padding limit, 7 does not join 280 (273 tokens of padding).
    assert sorted_batches(lengths, 2, max_padding=0.1) == [[1, 3], [5], [2, 4], [0]]


def test_with_a_padding_limit_a_batch_ends_where_padding_would_exceed_it():
    lengths = [100, 95, 90, 89, 50, 45, 44]
    assert sorted_batches(lengths, 32, max_padding=0.1) == [[0, 1, 2], [3], [4, 5, 6]]
    assert sorted_batches([20, 12, 13, 5], 32, max_padding=0.1) == [[0, 2, 1], [3]]  # 8 tokens of slack
    assert sorted_batches(lengths, 32) == [list(range(7))]


def test_ties_keep_the_callers_order():
    assert sorted_batches([3, 3, 3, 3], 3) == [[0, 1, 2], [3]]


def test_results_come_back_in_the_callers_order():
    items = ["aaaa", "b", "ccc", "dd", "eeeee"]
    seen = []

    def run_batch(batch):
        seen.append(batch)
        return [item.upper() for item in batch]

    assert run_in_sorted_batches(items, [len(i) for i in items], 2, run_batch) == [i.upper() for i in items]
    assert seen == [["eeeee", "aaaa"], ["ccc", "dd"], ["b"]]


def test_a_batch_function_that_loses_results_is_caught():
    with pytest.raises(RuntimeError, match="returned 1 results for 2 items"):
        run_in_sorted_batches(["a", "b"], [1, 1], 2, lambda batch: batch[:1])


@pytest.mark.parametrize("batch_size, error", [(0, ValueError), (-3, ValueError), (2.0, TypeError),
                                               (True, TypeError), ("8", TypeError)])
def test_bad_batch_sizes_name_the_argument(batch_size, error):
    with pytest.raises(error, match="batch_size"):
        check_batch_size(batch_size)


def test_inputs_may_be_one_text_a_list_or_any_iterable():
    assert as_batch("one") == (["one"], True)
    assert as_batch(["a", "b"]) == (["a", "b"], False)
    assert as_batch(text for text in ("x", "y")) == (["x", "y"], False)


@pytest.mark.parametrize("inputs, error, message", [
    (None, TypeError, "got None"),
    (42, TypeError, "got int"),
    ([], ValueError, "is empty"),
    (["fine", ""], ValueError, r"inputs\[1\] contains an empty string"),
    (["fine", 3], TypeError, r"inputs\[1\] must be a string"),
])
def test_bad_inputs_name_the_item(inputs, error, message):
    with pytest.raises(error, match=message):
        as_batch(inputs, check_text)
