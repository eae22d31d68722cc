"""What every task runner shares: construction from a checkpoint, placement, and input checking.

A task subclasses `TaskRunner`, names its `head` (an AutoModelFor* class) and writes its three
stages. Nothing else about loading or devices lives in a task module.
"""

from collections.abc import Iterable

import torch

from core.device import Placement
from core.loading import check_fast_tokenizer, load_model, load_tokenizer


class TaskRunner:
    """A model, its tokenizer and where they run. Subclasses add preprocess/forward/postprocess."""

    head = None  # the AutoModelFor* class of the task
    needs_fast_tokenizer = False  # True where the task needs offsets or word ids
    fast_tokenizer_reason = "this task needs character offsets"
    # Whether the task's matrix products have many rows (whole texts, beams of a batch) or a few
    # (one new token per prompt): int8 weights are packed for the kernels that suit them.
    many_rows = True

    def __init__(self, model, tokenizer, placement: Placement | None = None):
        if placement is None:
            parameter = next(model.parameters(), None)
            device = parameter.device if parameter is not None else torch.device("cpu")
            names = {torch.float32: "float32", torch.float16: "float16", torch.bfloat16: "bfloat16"}
            placement = Placement(device, names.get(getattr(parameter, "dtype", None), "float32"))
        if self.needs_fast_tokenizer:
            check_fast_tokenizer(tokenizer, self.fast_tokenizer_reason)
        self.model = model
        self.tokenizer = tokenizer
        self.placement = placement

    @classmethod
    def from_pretrained(cls, model, *, device=None, dtype="auto", revision=None, trust_remote_code=False,
                        gguf_file=None, tokenizer=None, **options):
        """Load a checkpoint (local folder, .gguf file or hub id) for this task and place it.

        `tokenizer` may be a tokenizer object or another folder/hub id to take it from.
        """
        source = dict(revision=revision, trust_remote_code=trust_remote_code)
        if tokenizer is None or isinstance(tokenizer, str):
            tokenizer = load_tokenizer(tokenizer or model, gguf_file=gguf_file if tokenizer is None else None,
                                       require_fast=cls.needs_fast_tokenizer, why_fast=cls.fast_tokenizer_reason,
                                       **source)
        loaded, placement = load_model(model, cls.head, gguf_file=gguf_file, device=device, dtype=dtype,
                                       many_rows=cls.many_rows, **source)
        return cls(loaded, tokenizer, placement, **options)

    @property
    def device(self) -> torch.device:
        return self.placement.device

    @property
    def dtype(self) -> str:
        return self.placement.dtype

    def to_device(self, encoding: dict) -> dict:
        """Move a batch of tensors to the model's device (inputs stay integer, so no dtype cast)."""
        return {key: value.to(self.device) for key, value in encoding.items()}

    def __repr__(self) -> str:
        name = getattr(self.model.config, "_name_or_path", "") or type(self.model).__name__
        return f"{type(self).__name__}(model={name!r}, device={str(self.device)!r}, dtype={self.dtype!r})"


def check_text(text, name: str = "inputs") -> str:
    """A non-empty string, or a clear TypeError/ValueError naming the argument."""
    if not isinstance(text, str):
        raise TypeError(f"{name} must be a string or a list of strings, got {type(text).__name__}{decode_hint(text)}")
    if not text.strip():
        raise ValueError(f"{name} contains an empty string; pass text with at least one non-space character")
    return text


def as_batch(inputs, check_item=check_text, name: str = "inputs") -> tuple[list, bool]:
    """Normalise one input or many (list, tuple, generator) into a list; say whether it was a single one.

    The pipelines accept both and answer a single input with a single result, so the tasks do too.
    """
    if inputs is None:
        raise TypeError(f"{name} must be a string or a list of strings, got None")
    if isinstance(inputs, (str, dict)):
        return [check_item(inputs, name)], True
    if isinstance(inputs, (bytes, bytearray)):  # iterable, but as ints: refuse before it is read byte by byte
        raise TypeError(f"{name} must be a string or a list of strings, got {type(inputs).__name__}"
                        f"{decode_hint(inputs)}")
    if not isinstance(inputs, Iterable):
        raise TypeError(f"{name} must be a string or a list of strings, got {type(inputs).__name__}")
    items = list(inputs)
    if not items:
        raise ValueError(f"{name} is empty; pass at least one text")
    return [check_item(item, f"{name}[{index}]") for index, item in enumerate(items)], False


def decode_hint(value) -> str:
    """The fix for bytes given as text: decode them first (empty for anything else)."""
    if isinstance(value, (bytes, bytearray)):
        return "; decode it first, e.g. data.decode('utf-8')"
    return ""


def check_flag(value, name: str) -> bool:
    """True or False, not merely truthy: `return_full_text="no"` would otherwise mean yes."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return value


def check_flags(**flags) -> None:
    """`check_flag` for each keyword: check_flags(stream=stream, skip_special_tokens=skip_special_tokens)."""
    for name, value in flags.items():
        check_flag(value, name)


def check_optional_flags(**flags) -> None:
    """Flags that may also be None (None: the task decides)."""
    for name, value in flags.items():
        if value is not None and not isinstance(value, bool):
            raise TypeError(f"{name} must be True, False or None, got {value!r}")


# The tokenizer's strategies that make sense for one text ("only_second" needs a pair).
TRUNCATION_STRATEGIES = ("longest_first", "only_first", "do_not_truncate")


def check_truncation(truncation) -> bool | str:
    """True/False or a tokenizer truncation strategy for a single text (the pipelines passed it to
    the tokenizer).

    "do_not_truncate" is returned as False, so that every truthy value means "cut".
    """
    if isinstance(truncation, bool) or truncation in TRUNCATION_STRATEGIES[:-1]:
        return truncation
    if truncation == TRUNCATION_STRATEGIES[-1]:
        return False
    raise TypeError(f"truncation must be True, False or one of {', '.join(map(repr, TRUNCATION_STRATEGIES))}, "
                    f"got {truncation!r}")
