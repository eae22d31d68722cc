"""Extractive question answering: the span of the context that answers a question, as the
`question-answering` pipeline of transformers 4.57.6 (removed from transformers in 5.3).

    preprocess   (question, context) pairs  ->  windows: the question, then as much context as fits
    forward      a batch of windows         ->  start and end logits (batch, tokens, 2)
    postprocess  one pair's windows+logits  ->  {"score", "start", "end", "answer"} (or top_k of them)

How a span is scored, per window (the pipeline's `select_starts_ends` and `decode_spans`):
1. every token that is not context is masked with -10000 (the CLS token stays: it is the model's
   "no answer" slot), then start and end logits each go through a softmax;
2. a span (s, e) of context tokens with s <= e < s + max_answer_len scores p_start[s] * p_end[e];
3. the best spans become answers: character offsets into the context, widened to whole words
   (`align_to_words`); the same answer text (ignoring case) found twice, e.g. by two overlapping
   windows, is one answer whose score is the sum.
With `handle_impossible_answer`, the empty answer competes with score p_start[CLS] * p_end[CLS]
(its lowest over the windows).

Deliberate differences from the 4.57.6 pipeline: README, 'Where nopipe differs from 4.57.6'.
"""

import heapq

import torch
from transformers import AutoModelForQuestionAnswering

from core.batching import check_batch_size
from core.checks import check_flag, check_positive_int, check_text, no_tokens_error
from core.runner import EncoderRunner, answers_streams
from core.scores import softmax
from core.windows import (
    Window,
    check_windows_have_tokens,
    forward_in_batches,
    split_into_windows,
    windows_by_source,
)

MASKED_LOGIT = -10000.0  # the pipeline's value; a masked token keeps exp(-10000) = 0 probability
NO_NULL_SCORE = 1_000_000.0  # the pipeline's start value for the lowest "no answer" score


def question_context_pairs(question, context) -> tuple[list[dict], bool]:
    """The pipeline's input forms as a list of {"question", "context"} dicts, and whether to answer with one result.

    Accepted, as in the pipeline: question= and context= strings; a list of questions with one
    context, or with a list of contexts of the same length; a {"question", "context"} dict or a list
    of them as the first argument. Like the pipeline, a single pair (even in a list) gets a single result.
    """
    if context is None:
        if isinstance(question, str):
            raise TypeError("context is missing: pass question= and context= strings, or a "
                            "{'question': ..., 'context': ...} dict (or a list of them)")
        items = [question] if isinstance(question, dict) else question
        if not isinstance(items, (list, tuple)) or not items or not all(isinstance(item, dict) for item in items):
            raise TypeError("pass question= and context= strings, or a {'question': ..., 'context': ...} dict or a "
                            f"non-empty list of them; got {type(question).__name__}")
        pairs = [check_pair(item, f"inputs[{index}]") for index, item in enumerate(items)]
    elif isinstance(question, str) and isinstance(context, str):
        pairs = [{"question": check_text(question, "question"), "context": check_text(context, "context")}]
    elif isinstance(question, (list, tuple)) and question:
        contexts = [context] * len(question) if isinstance(context, str) else context
        if not isinstance(contexts, (list, tuple)) or len(contexts) != len(question):
            raise ValueError(f"got {len(question)} questions and context={_describe(context)}; pass one context "
                             "string, or a list with one context per question")
        pairs = [{"question": check_text(q, f"question[{index}]"), "context": check_text(c, f"context[{index}]")}
                 for index, (q, c) in enumerate(zip(question, contexts))]
    else:
        raise TypeError(f"question must be a string or a non-empty list of strings (with context= a string or "
                        f"a list of strings), got question={_describe(question)} and context={_describe(context)}")
    return pairs, len(pairs) == 1


def _describe(value) -> str:
    return f"a list of {len(value)}" if isinstance(value, (list, tuple)) else type(value).__name__


def check_pair(pair: dict, name: str) -> dict:
    if set(pair) != {"question", "context"}:
        raise ValueError(f"{name} must have exactly the keys 'question' and 'context', got {sorted(pair)}")
    return {key: check_text(pair[key], f"{name}[{key!r}]") for key in ("question", "context")}


def pair_field_name(field: str, index: int, pairs: int) -> str:
    """How an error names a question or context: "context" for a single pair, "context[2]" among many."""
    return field if pairs == 1 else f"{field}[{index}]"


def span_probabilities(logits: torch.Tensor, keep: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Start and end probabilities of one window. `logits: (tokens, 2)`, `keep: (tokens,)` bool.

    Masked tokens get the pipeline's -10000 rather than -inf, so the scores match it to the last digit.
    """
    masked = logits.float().masked_fill(~keep[:, None], MASKED_LOGIT)
    return softmax(masked[:, 0]), softmax(masked[:, 1])


def ranked_spans(start_probs: torch.Tensor, end_probs: torch.Tensor, context: torch.Tensor,
                 max_answer_len: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Every valid span of one window, best first: (scores, starts, ends), each `(spans,)`.

    `start_probs, end_probs, context: (tokens,)`. Valid: both ends are context tokens and
    s <= e < s + max_answer_len. Ties keep (start, end) order.
    """
    tokens = len(start_probs)
    scores = start_probs[:, None] * end_probs[None, :]  # (tokens, tokens): score of span (s, e)
    band = torch.ones(tokens, tokens, dtype=torch.bool).triu().tril(min(max_answer_len, tokens) - 1)
    valid = band & context[:, None] & context[None, :]
    starts, ends = valid.nonzero(as_tuple=True)
    span_scores = scores[starts, ends]
    order = torch.sort(span_scores, descending=True, stable=True).indices
    return span_scores[order], starts[order], ends[order]


def answer_chars(encoding, start: int, end: int, align_to_words: bool) -> tuple[int, int]:
    """Character offsets in the context of tokens start..end, widened to whole words if asked.

    The context is the second sequence (index 1) of the window.
    """
    if align_to_words:
        start_word, end_word = encoding.token_to_word(start), encoding.token_to_word(end)
        if start_word is not None and end_word is not None:
            return (encoding.word_to_chars(start_word, sequence_index=1)[0],
                    encoding.word_to_chars(end_word, sequence_index=1)[1])
    return encoding.offsets[start][0], encoding.offsets[end][1]


class Answers:
    """Answers of one pair, in the order found; the same text (ignoring case) is one answer."""

    def __init__(self, context: str, align_to_words: bool):
        self.context, self.align_to_words, self.by_text = context, align_to_words, {}

    def add(self, encoding, start: int, end: int, score: float, merge: bool = True) -> dict | None:
        """Add span (start, end) of a window; a known text gets the score added if `merge`.

        Returns the answer if its text is new, else None.
        """
        first, last = answer_chars(encoding, start, end, self.align_to_words)
        text = self.context[first:last]
        known = self.by_text.get(text.lower())
        if known is None:
            answer = self.by_text[text.lower()] = {"score": score, "start": first, "end": last, "answer": text}
            return answer
        if merge:
            known["score"] += score
        return None

    def best(self, top_k: int, null_answer: dict | None = None) -> list[dict]:
        """The `top_k` highest scores; the empty answer competes if given. Ties keep the order found."""
        found = list(self.by_text.values()) + ([null_answer] if null_answer else [])
        return sorted(found, key=lambda answer: answer["score"], reverse=True)[:top_k]

    def more(self, count: int, spans) -> list[dict]:
        """Up to `count` new answers from `spans` ((score, start, end, encoding), best first), unmerged."""
        new = []
        for score, start, end, encoding in spans:
            if len(new) == count:
                break
            answer = self.add(encoding, start, end, score, merge=False)
            if answer is not None:
                new.append(answer)
        return new


class QuestionAnswerer(EncoderRunner):
    head = AutoModelForQuestionAnswering
    needs_fast_tokenizer = True
    fast_tokenizer_reason = "question answering maps answer tokens back to characters of the context"

    def window_sizes(self, max_seq_len=None, doc_stride=None) -> tuple[int, int]:
        """(max_seq_len, doc_stride) with the pipeline's defaults: min(model limit, 384) and min(half, 128)."""
        limit = self.window_length
        max_seq_len = min(limit, 384) if max_seq_len is None else check_positive_int(max_seq_len, "max_seq_len")
        if max_seq_len > limit:
            raise ValueError(f"max_seq_len={max_seq_len} is more than the {limit} tokens the model reads; "
                             f"pass max_seq_len <= {limit}")
        doc_stride = min(max_seq_len // 2, 128) if doc_stride is None else doc_stride
        if isinstance(doc_stride, bool) or not isinstance(doc_stride, int) or not 0 <= doc_stride < max_seq_len:
            raise ValueError(f"doc_stride (tokens shared by neighbouring windows) must be an int >= 0 and smaller "
                             f"than max_seq_len={max_seq_len}, got {doc_stride!r}")
        return max_seq_len, doc_stride

    def check_room(self, questions: list[str], max_seq_len: int, doc_stride: int) -> None:
        """Each window must hold more context tokens than `doc_stride`: the Rust tokenizer panics otherwise
        (huggingface/tokenizers#944), an error Python cannot catch."""
        lengths = [len(ids) for ids in self.tokenizer(questions, add_special_tokens=False)["input_ids"]]
        for index, length in enumerate(lengths):
            if length == 0:
                raise no_tokens_error(pair_field_name("question", index, len(questions)), questions[index])
            room = max_seq_len - length - self.tokenizer.num_special_tokens_to_add(pair=True)
            if room <= doc_stride:
                raise ValueError(f"question {index} is {length} tokens long, which leaves {room} context tokens per "
                                 f"window of max_seq_len={max_seq_len}, not more than doc_stride={doc_stride}; use "
                                 "a shorter question, a smaller doc_stride or a larger max_seq_len")

    def preprocess(self, pairs: list[dict], max_seq_len=None, doc_stride=None) -> list[Window]:
        """Windows of every pair: the question, then the next stretch of context, `doc_stride` tokens shared."""
        max_seq_len, doc_stride = self.window_sizes(max_seq_len, doc_stride)
        questions = [pair["question"] for pair in pairs]
        self.check_room(questions, max_seq_len, doc_stride)
        contexts = [pair["context"] for pair in pairs]
        windows = split_into_windows(self.tokenizer, questions, contexts, max_length=max_seq_len, stride=doc_stride,
                                     truncation="only_second")
        check_windows_have_tokens(windows, contexts, 1, [pair_field_name("context", index, len(contexts))
                                                         for index in range(len(contexts))])
        self.check_window_ids(windows, len(pairs))
        return windows

    def logits_of(self, output) -> torch.Tensor:
        """Start and end logits side by side: `forward` (EncoderRunner's) gives `(batch, tokens, 2)`."""
        return torch.stack([output.start_logits, output.end_logits], dim=-1)

    def window_probabilities(self, window: Window, logits: torch.Tensor):
        """(start_probs, end_probs, is_context) of one window, each `(tokens,)`; padding is cut off."""
        is_context = torch.tensor([sequence == 1 for sequence in window.encoding.sequence_ids])
        cls_id = self.tokenizer.cls_token_id
        is_cls = torch.tensor(window.features["input_ids"]) == (-1 if cls_id is None else cls_id)
        start_probs, end_probs = span_probabilities(logits[:len(window)], is_context | is_cls)
        return start_probs, end_probs, is_context

    def postprocess(self, context: str, windows: list[Window], logits: list[torch.Tensor], top_k: int = 1,
                    handle_impossible_answer: bool = False, max_answer_len: int = 15, align_to_words: bool = True):
        """Answers of one pair from its windows and their logits (`(tokens, 2)` each, padding allowed)."""
        answers, unseen, null_score = Answers(context, align_to_words), [], NO_NULL_SCORE
        # The pipeline looks at this many spans per window: more than top_k when word alignment can
        # turn several spans into one answer.
        looked_at = top_k * 2 + 10 if align_to_words else top_k
        for window, window_logits in zip(windows, logits):
            start_probs, end_probs, is_context = self.window_probabilities(window, window_logits)
            null_score = min(null_score, (start_probs[0] * end_probs[0]).item())
            spans = [(score, start, end, window.encoding) for score, start, end in
                     zip(*(values.tolist() for values in ranked_spans(start_probs, end_probs, is_context,
                                                                       max_answer_len)))]
            for score, start, end, encoding in spans[:looked_at]:
                answers.add(encoding, start, end, score)
            unseen.append(spans[looked_at:])
        null_answer = {"score": null_score, "start": 0, "end": 0, "answer": ""} if handle_impossible_answer else None
        best = answers.best(top_k, null_answer)
        if len(best) < top_k:  # beyond the pipeline: look further down for distinct answers
            best += answers.more(top_k - len(best), heapq.merge(*unseen, key=lambda span: -span[0]))
        return best[0] if top_k == 1 else best

    @answers_streams
    def __call__(self, question=None, context=None, *, top_k: int = 1, doc_stride: int | None = None,
                 max_answer_len: int = 15, max_seq_len: int | None = None, max_question_len: int = 64,
                 handle_impossible_answer: bool = False, align_to_words: bool = True, batch_size: int | None = None):
        """Answer one question (a dict, or a list of `top_k` dicts) or many (a list of those).

        `question` may also be a {"question", "context"} dict or a list of them, as in the pipeline.
        `max_question_len` is checked but unused, as in the pipeline with a fast tokenizer.
        """
        pairs, single = question_context_pairs(question, context)
        options = dict(top_k=check_positive_int(top_k, "top_k"),
                       max_answer_len=check_positive_int(max_answer_len, "max_answer_len"),
                       handle_impossible_answer=check_flag(handle_impossible_answer, "handle_impossible_answer"),
                       align_to_words=check_flag(align_to_words, "align_to_words"))
        check_positive_int(max_question_len, "max_question_len")
        batch_size = self.batch_size if batch_size is None else check_batch_size(batch_size)
        windows = self.preprocess(pairs, max_seq_len, doc_stride)
        logits = forward_in_batches(self.forward, [window.features for window in windows], batch_size)
        results = [self.postprocess(pair["context"], [windows[i] for i in mine], [logits[i] for i in mine], **options)
                   for pair, mine in zip(pairs, windows_by_source(windows, len(pairs)))]
        return results[0] if single else results
