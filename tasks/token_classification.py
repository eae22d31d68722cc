"""Token classification (NER): labelled tokens, words or entities, as `pipeline("token-classification")`.

    preprocess   texts                      ->  windows of at most the model's limit in tokens
    forward      a batch of windows         ->  logits (batch, tokens, labels)
    postprocess  one text's windows+logits  ->  [{"entity" or "entity_group", "score", "word", "start", "end"}]

`aggregation_strategy` says what an entry is:
- "none": one entry per token, with its label and `index` (token position);
- "simple": tokens joined into entities by their B-/I- labels;
- "first", "average", "max": tokens first joined into words (one label per word, from the word's first
  token, the average of its tokens' scores, or its most confident token), then words into entities.

Entities from overlapping windows are merged as the pipeline does: of two overlapping entities
the longer one stays, on equal length the higher score. As in the pipeline, this can lose text:
with `ignore_labels=[]`, a long "O" group of one window hides the next window's groups that start
inside it, even where they reach further.

Deliberate differences from the 4.57.6 pipeline: README, 'Where nopipe differs from 4.57.6'.
"""

from collections.abc import Iterable

import numpy as np
import torch
from transformers import AutoModelForTokenClassification

from core.batching import check_batch_size
from core.checks import as_batch
from core.choices import AGGREGATION_STRATEGIES
from core.runner import EncoderRunner, answers_streams
from core.scores import softmax
from core.windows import (
    Window,
    check_windows_have_tokens,
    forward_in_batches,
    split_into_windows,
    windows_by_source,
)

WORD_STRATEGIES = ("first", "average", "max")  # label words, not tokens


def check_aggregation_strategy(aggregation_strategy) -> str:
    if not isinstance(aggregation_strategy, str) or aggregation_strategy.lower() not in AGGREGATION_STRATEGIES:
        raise ValueError(f"aggregation_strategy must be one of {', '.join(map(repr, AGGREGATION_STRATEGIES))}, "
                         f"got {aggregation_strategy!r}")
    return aggregation_strategy.lower()


def check_ignore_labels(ignore_labels) -> tuple[str, ...]:
    """Labels (or entity groups) to leave out; the pipeline's default drops "O", the non-entity label."""
    if ignore_labels is None:
        return ("O",)
    is_list = isinstance(ignore_labels, Iterable) and not isinstance(ignore_labels, str)
    labels = tuple(ignore_labels) if is_list else ()  # read once: a generator is empty the second time
    if not is_list or not all(isinstance(label, str) for label in labels):
        raise TypeError(f"ignore_labels must be a list of label names such as ['O'], got {ignore_labels!r}")
    return labels


def token_entries(window: Window, text: str, probs: np.ndarray, tokenizer) -> list[dict]:
    """One entry per non-special token of a window: its piece, label probabilities, characters, word.

    `probs: (tokens, labels)`. An unknown token shows the characters it stands for, as in the pipeline.
    """
    encoding, entries = window.encoding, []
    for index, (token_id, (start, end)) in enumerate(zip(encoding.ids, encoding.offsets)):
        if encoding.special_tokens_mask[index]:
            continue
        piece = text[start:end] if token_id == tokenizer.unk_token_id else encoding.tokens[index]
        entries.append({"word": piece, "scores": probs[index], "start": start, "end": end, "index": index,
                        "word_id": encoding.word_ids[index]})
    return entries


def label_tokens(entries: list[dict], id2label: dict) -> list[dict]:
    """Each token's most likely label ("none" and "simple")."""
    labelled = []
    for entry in entries:
        best = int(entry["scores"].argmax())
        labelled.append({"entity": id2label[best], "score": entry["scores"][best], "index": entry["index"],
                         "word": entry["word"], "start": entry["start"], "end": entry["end"],
                         "pieces": [entry["word"]]})
    return labelled


def partial_words(word_ids: list[list[int | None]], step: int) -> list[set[int]]:
    """For each window of a text, the words it holds only part of while another window holds them whole.

    `word_ids: (windows, tokens)`: each window's `word_ids()` in reading order, None for special tokens,
    words counted over the whole text; token i of window k is token `k * step + i` of the text (every
    window starts with the same special tokens). A window cuts a word when the word goes on before its
    first token or after its last; the neighbouring window, which shares `stride` tokens with it, then
    holds the word whole if the word is shorter than the stride. A word that no window holds whole (one
    longer than the stride) is left to every window that reads part of it, as before: nothing is lost.
    """
    held = [{} for _ in word_ids]  # per window: word -> the text's tokens of it that the window holds
    for window, (held_here, ids) in enumerate(zip(held, word_ids)):
        for index, word in enumerate(ids):
            if word is not None:
                held_here.setdefault(word, set()).add(window * step + index)
    every = {}  # word -> all its tokens in the text
    for held_here in held:
        for word, tokens in held_here.items():
            every.setdefault(word, set()).update(tokens)
    whole_somewhere = {word for held_here in held for word, tokens in held_here.items() if tokens == every[word]}
    return [{word for word, tokens in held_here.items() if tokens != every[word] and word in whole_somewhere}
            for held_here in held]


def split_words(entries: list[dict]) -> list[list[dict]]:
    """Consecutive tokens with the same word id form a word."""
    words = []
    for entry in entries:
        if words and entry["word_id"] is not None and entry["word_id"] == words[-1][-1]["word_id"]:
            words[-1].append(entry)
        else:
            words.append([entry])
    return words


def label_word(tokens: list[dict], strategy: str, id2label: dict, join_tokens) -> dict:
    """One label for a whole word ("first", "average" or "max"), as the pipeline's `aggregate_word`."""
    if strategy == "first":
        scores = tokens[0]["scores"]
    elif strategy == "max":
        scores = max(tokens, key=lambda token: token["scores"].max())["scores"]
    else:
        scores = np.nanmean(np.stack([token["scores"] for token in tokens]), axis=0)
    best = int(scores.argmax())
    pieces = [token["word"] for token in tokens]
    return {"entity": id2label[best], "score": scores[best], "word": join_tokens(pieces),
            "start": tokens[0]["start"], "end": tokens[-1]["end"], "pieces": pieces}


def bio_tag(label: str) -> tuple[str, str]:
    """("B", "PER") for "B-PER"; a label without prefix continues, as the pipeline's `get_tag`."""
    if label.startswith(("B-", "I-")):
        return label[0], label[2:]
    return "I", label


def group_bio_entities(entities: list[dict], join_tokens) -> list[dict]:
    """Join adjacent tokens (or words) into entities: an I-X (or plain X) after an X continues it.

    Two adjacent B-X are two entities. A group's score is the mean of its members' scores. Its word
    is made from the members' token pieces in one go; the pipeline joins already-joined words again,
    which on byte-level BPE turns non-ASCII letters into U+FFFD (the same result otherwise).
    """
    groups = []
    for entity in entities:
        bi, tag = bio_tag(entity["entity"])
        if groups and bi != "B" and tag == bio_tag(groups[-1][-1]["entity"])[1]:
            groups[-1].append(entity)
        else:
            groups.append([entity])
    return [{"entity_group": group[0]["entity"].split("-", 1)[-1],  # the pipeline's name, even for "X-Y"
             "score": np.nanmean([member["score"] for member in group]),
             "word": join_tokens([piece for member in group for piece in member["pieces"]]),
             "start": group[0]["start"], "end": group[-1]["end"]} for group in groups]


def merge_overlapping_entities(entities: list[dict]) -> list[dict]:
    """Of entities found by overlapping windows, keep the longer one, on equal length the higher score."""
    merged = []
    for entity in sorted(entities, key=lambda entity: entity["start"]):
        if merged and merged[-1]["start"] <= entity["start"] < merged[-1]["end"]:
            kept = merged[-1]
            longer = entity["end"] - entity["start"] > kept["end"] - kept["start"]
            as_long = entity["end"] - entity["start"] == kept["end"] - kept["start"]
            if longer or (as_long and entity["score"] > kept["score"]):
                merged[-1] = entity
        else:
            merged.append(entity)
    return merged


def keep_each_token_once(tokens: list[dict]) -> list[dict]:
    """Tokens read by two windows (same text-wide `index`): keep the higher-scoring reading, in text order."""
    best = {}
    for token in tokens:
        if token["index"] not in best or token["score"] > best[token["index"]]["score"]:
            best[token["index"]] = token
    return [best[index] for index in sorted(best)]


class TokenClassifier(EncoderRunner):
    head = AutoModelForTokenClassification
    needs_fast_tokenizer = True
    # Even "none" and "simple" need offsets: every entity's start/end are characters of the text (4.57.6
    # gave None there with a slow tokenizer), and long texts are cut into windows by the fast tokenizer.
    fast_tokenizer_reason = ("token classification gives every entity's start/end in the text, with any "
                             "aggregation_strategy ('none' and 'simple' too), and reads long texts in windows, "
                             "which needs the character offsets and word ids")

    @property
    def window_room(self) -> int:
        """How many text tokens one window holds (the model's limit minus [CLS]/[SEP] and the like)."""
        return self.window_length - self.tokenizer.num_special_tokens_to_add()

    def check_stride(self, stride) -> int:
        """The overlap of neighbouring windows; by default a quarter of a window."""
        if stride is None:
            return self.window_room // 4
        if isinstance(stride, bool) or not isinstance(stride, int):
            raise TypeError(f"stride must be an int (tokens shared by neighbouring windows), got {stride!r}")
        if not 0 <= stride < self.window_room:
            raise ValueError(f"stride must be >= 0 and smaller than the {self.window_room} text tokens a window "
                             f"holds, got {stride}")
        return stride

    def preprocess(self, texts: list[str], stride: int | None = None) -> list[Window]:
        """Windows of every text; a text that fits the model is one window."""
        limit = self.window_length
        windows = split_into_windows(self.tokenizer, texts, max_length=limit, stride=self.check_stride(stride))
        check_windows_have_tokens(windows, texts, 0, [f"inputs[{index}]" for index in range(len(texts))])
        self.check_window_ids(windows, len(texts))
        return windows

    # forward (EncoderRunner.forward): a padded batch of window features -> logits `(batch, tokens, labels)`

    def postprocess(self, text: str, windows: list[Window], logits: list[torch.Tensor],
                    aggregation_strategy: str = "none", ignore_labels=None, stride: int | None = None) -> list[dict]:
        """Entities of one text from its windows and their logits (`(tokens, labels)` each, padding allowed).

        `stride` must be the one given to `preprocess`: with "none" it places each window's tokens in the text.
        """
        strategy = check_aggregation_strategy(aggregation_strategy)
        ignore = check_ignore_labels(ignore_labels)
        step = self.window_room - self.check_stride(stride)  # how far each window moves along the text
        partial = (partial_words([window.encoding.word_ids for window in windows], step)
                   if strategy in WORD_STRATEGIES else [frozenset()] * len(windows))
        per_window = [self.window_entities(text, window, softmax(window_logits[:len(window)]).numpy(), strategy,
                                           leave_out)
                      for window, window_logits, leave_out in zip(windows, logits, partial)]
        if strategy == "none":  # tokens: one reading per token first, then drop the ignored labels
            for window, tokens in zip(windows, per_window):
                for token in tokens:
                    token["index"] += window.position * step
            found = [token for token in keep_each_token_once(sum(per_window, [])) if token["entity"] not in ignore]
        else:  # entities: as the pipeline, drop the ignored groups of each window, then merge the windows
            found = [entity for entities in per_window for entity in entities if entity["entity_group"] not in ignore]
            found = merge_overlapping_entities(found) if len(windows) > 1 else found
        return [{**entity, "score": float(entity["score"])} for entity in found]

    def window_entities(self, text: str, window: Window, probs: np.ndarray, strategy: str,
                        leave_out: set[int] = frozenset()) -> list[dict]:
        """Tokens, words or entities of one window, before labels are ignored.

        With "first", "average" and "max" the words in `leave_out` (the window cuts them; another window
        reads them whole, see `partial_words`) are left out. "none" and "simple" label tokens and keep them all.
        """
        id2label, join_tokens = self.model.config.id2label, self.tokenizer.convert_tokens_to_string
        entries = token_entries(window, text, probs, self.tokenizer)
        if strategy in ("none", "simple"):
            labelled = label_tokens(entries, id2label)
        else:
            words = [word for word in split_words(entries) if word[0]["word_id"] not in leave_out]
            labelled = [label_word(word, strategy, id2label, join_tokens) for word in words]
        if strategy == "none":
            return [{key: value for key, value in token.items() if key != "pieces"} for token in labelled]
        return group_bio_entities(labelled, join_tokens)

    @answers_streams
    def __call__(self, inputs, *, aggregation_strategy: str = "none", ignore_labels=None, stride: int | None = None,
                 batch_size: int | None = None):
        """Entities of one text (a list) or of many (a list of lists), as the pipeline returns them."""
        texts, single = as_batch(inputs)
        options = dict(aggregation_strategy=check_aggregation_strategy(aggregation_strategy),
                       ignore_labels=check_ignore_labels(ignore_labels), stride=self.check_stride(stride))
        batch_size = self.batch_size if batch_size is None else check_batch_size(batch_size)
        windows = self.preprocess(texts, options["stride"])
        logits = forward_in_batches(self.forward, [window.features for window in windows], batch_size)
        results = [self.postprocess(text, [windows[i] for i in mine], [logits[i] for i in mine], **options)
                   for text, mine in zip(texts, windows_by_source(windows, len(texts)))]
        return results[0] if single else results
