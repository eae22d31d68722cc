"""core.seed.set_seed puts every generator where transformers.set_seed does."""

import random

import numpy as np
import pytest
import torch
import transformers

from core import set_seed


def draws():
    return random.random(), float(np.random.rand()), torch.rand(3).tolist()


@pytest.mark.parametrize("seed", [0, 42, 2**31 - 1])
def test_same_draws_as_transformers_set_seed(seed):
    transformers.set_seed(seed)
    expected = draws()
    set_seed(seed)
    assert draws() == expected


def test_numpy_ints_are_the_same_seeds_as_python_ints():
    transformers.set_seed(7)  # which itself refuses np.int64 (random.seed does)
    expected = draws()
    set_seed(np.int64(7))
    assert draws() == expected


def test_different_seeds_give_different_draws():
    set_seed(1)
    first = draws()
    set_seed(2)
    assert draws() != first


@pytest.mark.parametrize("seed", ["42", 4.2, None, True, np.bool_(True), np.float64(1.0)])
def test_seed_must_be_an_int(seed):
    with pytest.raises(TypeError, match="seed must be an int"):
        set_seed(seed)
