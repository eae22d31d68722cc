"""The checks every runner makes on what it is given, written once: each failure is a TypeError or
ValueError that names the argument and says what to pass instead.
"""

from collections.abc import Iterable

from decoding.warn import warn_caller


def check_positive_int(value, name: str, minimum: int = 1) -> int:
    """An int of at least `minimum` (not a bool, not a float), or an error naming `name`."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int >= {minimum}, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def check_input_length(index: int, length: int, limit: int | None, truncation, also: str = "",
                       at_least: bool = False) -> bool:
    """Whether input `index` of `length` tokens must be cut to the model's `limit`.

    The one rule of every task: an input that fits is kept; one that does not is an error naming it,
    unless `truncation` is set, and then it is cut with a warning. Nothing is cut silently.
    also: another way out the task offers, added to the error's fix. at_least: `length` counts only the
    start of a very long text (see `head_of_long_text`).
    """
    if limit is None or length <= limit:
        return False
    size = f"{'at least ' if at_least else ''}{length} tokens long"
    if not truncation:
        fixes = ["shorten it", "pass truncation=True to cut it to the limit", *([also] if also else [])]
        raise ValueError(f"inputs[{index}] is {size} but the model reads at most {limit}; "
                         f"{', '.join(fixes[:-1])}{',' if len(fixes) > 2 else ''} or {fixes[-1]}")
    warn_caller(f"inputs[{index}] is {size}; truncated to its first {limit} tokens")
    return True


CHARS_PER_TOKEN = 16  # far more than any tokenizer's average, so a head of limit * 16 characters is plenty
HEAD_MARGIN = 64  # tokens past the limit that make the head's first `limit` tokens those of the whole text


def head_of_long_text(text: str, limit: int | None, count_tokens) -> tuple[str, bool]:
    """(text to tokenize, whether it was cut): the start of a text far longer than the model reads.

    Used when truncation is on: a 50 MB line would otherwise be tokenized whole (minutes, gigabytes)
    to keep its first few hundred tokens. The head grows until it holds HEAD_MARGIN tokens more than
    the limit, so the tokens kept come from words that end well before the cut.
    count_tokens: text -> number of tokens (no special tokens).
    """
    if limit is None:
        return text, False
    budget = limit * CHARS_PER_TOKEN
    while budget < len(text):
        if count_tokens(text[:budget]) > limit + HEAD_MARGIN:
            return text[:budget], True
        budget *= 4
    return text, False


def check_text(text, name: str = "inputs") -> str:
    """A non-empty string, or a clear TypeError/ValueError naming the argument."""
    if not isinstance(text, str):
        raise TypeError(f"{name} must be a string or a list of strings, got {type(text).__name__}{decode_hint(text)}")
    if not text.strip():
        raise ValueError(f"{name} contains an empty string; pass text with at least one non-space character")
    check_encodable(text, name)
    return text


def check_encodable(text: str, name: str) -> None:
    """Refuse a lone surrogate ("\\ud800"): no tokenizer can read it, and Rust's would fail without naming it."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        raise ValueError(f"{name} holds a lone surrogate {text[error.start]!r} at character {error.start}, which is "
                         "not text; decode the bytes it came from with errors='replace' or remove it") from None


def no_tokens_error(name: str, text: str) -> ValueError:
    """A text that passed the empty-string check, but of which the tokenizer keeps nothing."""
    return ValueError(f"{name} has no tokens: the tokenizer drops every character of {text[:40]!r} (zero-width, "
                      "control or other unreadable characters only); pass text with words in it")


def check_has_tokens(tokenizer, text: str, name: str) -> None:
    """The one rule of every task: a text of which the tokenizer keeps nothing is an error, not an answer."""
    if not tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"]:
        raise no_tokens_error(name, text)


def check_encoded_has_tokens(tokenizer, encoded, texts: dict) -> None:
    """`check_has_tokens` for an encoding already made, without tokenizing again where the tokenizer is
    fast. texts: name -> text, in the order the encoding holds them (a pair: text, then text_pair)."""
    if getattr(encoded, "is_fast", False):
        present = set(encoded.sequence_ids())
        missing = [name for sequence, name in enumerate(texts) if sequence not in present]
    else:
        missing = [name for name, text in texts.items() if not tokenizer(text, add_special_tokens=False)["input_ids"]]
    if missing:
        raise no_tokens_error(missing[0], texts[missing[0]])
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
