"""Text classification: a label (or a ranking of all labels) per text, as `pipeline("text-classification")`.

    preprocess   texts, or {"text", "text_pair"} dicts  ->  token features, one dict per text
    forward      a batch of features                    ->  logits (batch, labels)
    postprocess  the logits of one text                 ->  {"label", "score"} or a sorted list of them

Deliberate differences from the 4.57.6 pipeline: README, 'Where nopipe differs from 4.57.6'.
"""


import torch
from transformers import AutoModelForSequenceClassification

from core.batching import check_batch_size
from core.checks import (
    as_batch,
    check_encoded_has_tokens,
    check_flag,
    check_input_length,
    check_text,
    head_of_long_text,
)
from core.runner import EncoderRunner, answers_streams
from core.scores import ACTIVATIONS
from core.windows import forward_in_batches, max_input_tokens


class _BestLabelOnly:
    """The default `top_k`: the pipeline's legacy output, the best label as one dict per text."""

    def __repr__(self) -> str:
        return "best label only"


BEST_LABEL_ONLY = _BestLabelOnly()


def check_classification_input(item, name: str = "inputs"):
    """A non-empty text, or a {"text": ..., "text_pair": ...} dict of them."""
    if not isinstance(item, dict):
        return check_text(item, name)
    unknown = set(item) - {"text", "text_pair"}
    if "text" not in item or unknown:
        raise ValueError(f"{name} must have the keys 'text' and optionally 'text_pair', got {sorted(item)}")
    for key, text in item.items():
        check_text(text, f"{name}[{key!r}]")
    return item


def check_top_k(top_k):
    """`top_k` is the legacy default, None (all labels) or a positive int."""
    if top_k is BEST_LABEL_ONLY or top_k is None:
        return top_k
    if isinstance(top_k, bool) or not isinstance(top_k, int):
        raise TypeError(f"top_k must be a positive int or None (all labels), got {type(top_k).__name__}")
    if top_k < 1:
        raise ValueError(f"top_k must be >= 1 (or None for all labels), got {top_k}")
    return top_k


def default_activation(config) -> str:
    """The pipeline's choice when the caller names none (text_classification.py, postprocess).

    A multi-label checkpoint whose config does not say `problem_type` gets softmax, as in the pipeline.
    """
    if config.problem_type == "regression":
        return "none"
    if config.problem_type == "multi_label_classification" or config.num_labels == 1:
        return "sigmoid"
    return "softmax"


def check_activation(function_to_apply) -> str:
    if not isinstance(function_to_apply, str) or function_to_apply.lower() not in ACTIVATIONS:
        raise ValueError(f"function_to_apply must be one of {', '.join(map(repr, ACTIVATIONS))} "
                         f"(or None for the model's default), got {function_to_apply!r}")
    return function_to_apply.lower()


def ranked_labels(scores: torch.Tensor, id2label: dict, top_k: int | None) -> list[dict]:
    """All labels by descending score (ties keep label order, as the pipeline's stable sort), cut to top_k."""
    labelled = [{"label": id2label[index], "score": score} for index, score in enumerate(scores.tolist())]
    return sorted(labelled, key=lambda entry: entry["score"], reverse=True)[:top_k]


class TextClassifier(EncoderRunner):
    head = AutoModelForSequenceClassification

    def preprocess(self, texts: list, truncation: bool = False) -> list[dict]:
        """Token ids of each text (or pair); one longer than the model reads is an error, or cut if asked."""
        limit = max_input_tokens(self.tokenizer, self.model.config)
        features = [self.encode(index, text, limit, truncation) for index, text in enumerate(texts)]
        self.check_input_ids([feature["input_ids"] for feature in features])
        return features

    def encode(self, index: int, text, limit: int | None, truncation: bool) -> dict:
        """The model's inputs for one text or {"text", "text_pair"}: it must leave tokens, and fit or be cut."""
        pair = text if isinstance(text, dict) else {"text": text}
        cut = False
        if truncation and "text_pair" not in pair:  # a huge text: tokenize only its start (see head_of_long_text)
            head, cut = head_of_long_text(pair["text"], limit, self.count_tokens)
            pair = {"text": head}
        encoded = self.tokenizer(**pair, verbose=False)  # we say it ourselves, naming the text
        check_encoded_has_tokens(self.tokenizer, encoded, {f"inputs[{index}]" if key == "text" else
                                                           f"inputs[{index}][{key!r}]": value for key, value in pair.items()})
        if check_input_length(index, len(encoded["input_ids"]), limit, truncation, at_least=cut):
            encoded = self.tokenizer(**pair, truncation=True, max_length=limit)
        return {name: encoded[name] for name in self.tokenizer.model_input_names if name in encoded}

    # forward (EncoderRunner.forward): a padded batch of features -> logits `(batch, labels)`

    def postprocess(self, logits: torch.Tensor, function_to_apply: str | None = None, top_k=BEST_LABEL_ONLY):
        """`logits: (labels,)` of one text -> the best {"label", "score"}, or the top_k of them, sorted."""
        activation = check_activation(function_to_apply or default_activation(self.model.config))
        scores = ACTIVATIONS[activation](logits)
        id2label = self.model.config.id2label
        if top_k is BEST_LABEL_ONLY:
            best = int(scores.argmax())
            return {"label": id2label[best], "score": scores[best].item()}
        return ranked_labels(scores, id2label, top_k)

    @answers_streams
    def __call__(self, inputs, *, top_k=BEST_LABEL_ONLY, function_to_apply: str | None = None,
                 truncation: bool = False, batch_size: int | None = None):
        """Classify one text (or pair) or many. The result has the pipeline's shape:

        - default top_k: a text gives `[{"label", "score"}]` (a list of one), a pair dict gives the dict
          itself, a list of inputs gives one dict per input;
        - top_k an int or None: a sorted list of dicts per input (None = every label).

        `truncation=True` cuts texts longer than the model reads (with a warning) instead of refusing them.
        """
        texts, single = as_batch(inputs, check_classification_input)
        top_k = check_top_k(top_k)
        if function_to_apply is not None:
            check_activation(function_to_apply)
        check_flag(truncation, "truncation")
        batch_size = self.batch_size if batch_size is None else check_batch_size(batch_size)
        logits = forward_in_batches(self.forward, self.preprocess(texts, truncation), batch_size)
        results = [self.postprocess(row, function_to_apply, top_k) for row in logits]
        if not single:
            return results
        if top_k is BEST_LABEL_ONLY and isinstance(inputs, str):
            return results  # the pipeline wraps a single text's legacy result in a list (but not a pair's)
        return results[0]
