"""Token windows: how encoder tasks cut long inputs, batch them, and run the model on them.

An encoder reads at most `model_max_length` tokens. The pipelines either truncate (silently) or,
when asked, let the fast tokenizer cut the text into overlapping windows (`stride` = how many tokens
two neighbouring windows share). Token classification and question answering both use the windows;
text classification uses the batching. A window keeps the tokenizer's `Encoding`, which maps every
token back to characters (`offsets`), words (`word_ids`) and text vs. question (`sequence_ids`).

Batches are right-padded, so token i of a window is column i of the model's output and the
encoding's indices can be used on the logits unchanged.
"""

import inspect
from dataclasses import dataclass

import torch
from tokenizers import Encoding

from core.batching import ENCODER_MAX_PADDING, run_in_sorted_batches
from core.checks import no_tokens_error
from decoding.warn import warn_caller

# transformers' "no limit given" value for model_max_length is int(1e30); anything this large is no limit.
_NO_LIMIT = 1_000_000


@dataclass(frozen=True)
class Window:
    """One model input cut from one text (or one question/context pair)."""

    source: int  # index of the input it was cut from
    position: int  # 0 for the first window of its input, 1 for the next, ...
    features: dict  # model inputs as lists of ints: input_ids, attention_mask[, token_type_ids]
    encoding: Encoding  # offsets, word ids, sequence ids and special tokens of this window

    def __len__(self) -> int:
        return len(self.features["input_ids"])


def max_input_tokens(tokenizer, config) -> int | None:
    """The most tokens the model reads at once: the tokenizer's limit, else the position embeddings;
    None when neither says (T5 has no position table: an unknown limit is no limit, as in the pipeline)."""
    if tokenizer.model_max_length and tokenizer.model_max_length < _NO_LIMIT:
        return int(tokenizer.model_max_length)
    if getattr(config, "max_position_embeddings", None):
        return int(config.max_position_embeddings)
    return None


DEFAULT_WINDOW = 512  # tokens per window when the model declares no limit (BERT's and T5's usual length)


def window_length(tokenizer, config) -> int:
    """Tokens per window for tasks that cut long texts into windows (NER, QA): the model's limit, or
    DEFAULT_WINDOW with a warning when the model declares none."""
    limit = max_input_tokens(tokenizer, config)
    if limit is not None:
        return limit
    warn_caller(f"the model declares no input limit (no tokenizer.model_max_length, no max_position_embeddings); "
                f"reading long texts in windows of {DEFAULT_WINDOW} tokens. Set tokenizer.model_max_length to choose")
    return DEFAULT_WINDOW


def model_features(tokenizer, encoded, index: int) -> dict:
    """The model's own inputs of row `index` (the tokenizer also returns offsets, masks, mappings)."""
    return {name: encoded[name][index] for name in tokenizer.model_input_names if name in encoded}


def split_into_windows(tokenizer, texts: list[str], text_pairs: list[str] | None = None, *,
                       max_length: int, stride: int, truncation="longest_first") -> list[Window]:
    """Tokenize every text (or pair) into windows of at most `max_length` tokens sharing `stride` tokens.

    Only the truncated side is windowed: with `truncation="only_second"` each window repeats the
    question and shows the next part of the context. The caller checks that `stride` is smaller than
    the room left in a window; the Rust tokenizer panics (an uncatchable error) otherwise.
    """
    encoded = tokenizer(texts, text_pairs, truncation=truncation, max_length=max_length, stride=stride,
                        return_overflowing_tokens=True, return_token_type_ids=True, padding=False)
    windows, seen = [], {}
    for index, source in enumerate(encoded["overflow_to_sample_mapping"]):
        position = seen[source] = seen.get(source, -1) + 1
        windows.append(Window(source, position, model_features(tokenizer, encoded, index),
                              encoded.encodings[index]))
    return windows


def windows_by_source(windows: list[Window], sources: int) -> list[list[int]]:
    """For each input, the indices of its windows in `windows`, in reading order."""
    grouped = [[] for _ in range(sources)]
    for index, window in enumerate(windows):
        grouped[window.source].append(index)
    return grouped


def check_windows_have_tokens(windows: list[Window], texts: list[str], sequence: int, names: list[str]) -> None:
    """Each text must leave a token in one of its windows (`sequence`: 0 for the text of a single-text
    window, 1 for the context after a question); one the tokenizer drops entirely is an error naming it."""
    readable = [False] * len(texts)
    for window in windows:
        readable[window.source] = readable[window.source] or sequence in window.encoding.sequence_ids
    for index, has_tokens in enumerate(readable):
        if not has_tokens:
            raise no_tokens_error(names[index], texts[index])


def run_model(model, batch: dict):
    """The model's output on one batch, without gradients or a KV cache (an encoder never reuses one)."""
    if "use_cache" in inspect.signature(model.forward).parameters:
        batch = {**batch, "use_cache": False}
    with torch.inference_mode():
        return model(**batch)


def pad_features(tokenizer, features: list[dict]) -> dict[str, torch.Tensor]:
    """One right-padded batch of tensors from feature dicts of different lengths."""
    return tokenizer.pad(features, padding=True, padding_side="right", return_tensors="pt")


def forward_in_batches(forward, features: list[dict], batch_size: int) -> list[torch.Tensor]:
    """`forward(list_of_features) -> (batch, ...)` over length-sorted batches; one row per item, in order.

    Sorting by length keeps padding, which is wasted compute, small.
    """
    lengths = [len(item["input_ids"]) for item in features]
    return run_in_sorted_batches(features, lengths, batch_size, forward, ENCODER_MAX_PADDING)
