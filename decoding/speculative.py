"""Speculative decoding: plain decoding's tokens (greedy) or distribution (sampling), several per model call.

Summaries, extractions and rewrites copy long runs of their input. Prompt lookup (transformers'
`prompt_lookup_num_tokens`) guesses the next tokens by finding the text's last n-gram earlier in the
sequence and proposing what followed it there; an assistant model (`assistant_model`) writes them.
One forward pass over the last token and the K guesses gives the model's distribution at K + 1
positions; the loop then walks them as the token loop would, token by token (the same processors on
the same sequence, the same stop criteria, the same padding of finished rows), and keeps a guess
only while it equals the token chosen there. The first disagreement is replaced by that choice,
which costs nothing extra: every call adds at least one token. Greedy: the choice is the argmax,
and the output is plain greedy's, token for token. Sampling: a guess proposed with certainty (prompt
lookup) is kept when the draw equals it; a guess the assistant drew from a distribution q is kept
with probability min(1, p/q), else replaced by a draw from max(p - q, 0): either way every token is
distributed as the model's own (`accept_or_resample`).

Batches stay aligned here: a step keeps the guesses that every running row accepted (the fewest),
so all rows keep one length, one cache length and one position; the cache is then cut back to the
kept tokens (decoding/speculative_rows.py lets rows keep their own, where it can). The number of
prompt-lookup guesses adapts as transformers' "heuristic" schedule does: +2 after a call that kept
them all, -1 after one that did not, within 1..K, so a batch whose rows rarely agree stops paying
for long guesses. An assistant's guesses cost a step of the assistant each, so their number is
chosen for the most expected tokens per cost (`GuessWidth`): an int8 copy that agrees four times in
five writes one or two a call, one that agrees 99 times in 100 writes them all. `Acceptance` counts
what was proposed and kept.
"""

import itertools
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch

from decoding.model_step import ModelState, decode_ahead, decode_step, prefill, rewind, start
from decoding.processors import Processor, run_processors
from decoding.stopping import StopCriteria
from decoding.token_loop import append_tokens, greedy, pad_if_finished

MAX_MATCHING_NGRAM = 2  # transformers' PromptLookupCandidateGenerator default


@dataclass
class Acceptance:
    """Guesses proposed and kept over a call, and the model calls it took (prefill excluded)."""

    proposed: int = 0
    accepted: int = 0
    calls: int = 0
    tokens: int = 0

    @property
    def rate(self) -> float:
        return self.accepted / self.proposed if self.proposed else 0.0


# What one more fed position costs, as a share of a one-position call. Measured on this project's CPU
# (SmolLM2-135M, 2 cores, cache of 200): +11.5% per position at batch 1 and at batch 8 alike. A GPU
# pays less, so this choice errs on the side of shorter guesses there.
EXTRA_POSITION_COST = 0.12


class GuessWidth:
    """How many guesses a call feeds: the number that gives the most tokens per unit of cost.

    Every row is fed the same number of positions, so one row's long guess costs the whole batch.
    Each row's chance of keeping its next guess is learned from what it kept so far (kept guesses
    against refused ones, recent calls weighing most); a row expects 1 + a + a^2 + ... tokens from
    n guesses, and a call of n guesses costs call + (position + guess) * n: the model's call, one more
    position fed to it, and writing one guess. Without a clock: a call is 1, a position
    EXTRA_POSITION_COST, a guess nothing (prompt lookup). An assistant's guesses cost a step each, so
    greedy decoding (whose tokens do not depend on the widths) prices all three in seconds from the
    calls it made (`clock`). Sampling stays off the clock, so a seeded run draws the same numbers on
    any machine.
    """

    DECAY = 0.8  # the weight of a call's evidence after each later call

    def __init__(self, rows: int, least: int = 0, prior: tuple[float, float] = (0.5, 1.0)):
        """least: the fewest guesses a call feeds when it can (1 for an assistant: a call without
        guesses would learn nothing, and the assistant would have to catch up anyway); prior: the
        chance of keeping a guess before any was fed, and its weight in refusals."""
        chance, weight = prior
        self.prior = (chance / (1 - chance) * weight, weight)  # (kept, refused)
        self.kept = [self.prior[0]] * rows
        self.refused = [self.prior[1]] * rows
        self.least = least
        self.floor = 0  # after a call in which every row kept every guess: its width
        self.call, self.position, self.guess = 1.0, EXTRA_POSITION_COST, 0.0
        self.call_seconds = {}  # width fed -> seconds of the model's call (recent calls weighing most)

    def chance(self, row: int) -> float:
        return self.kept[row] / (self.kept[row] + self.refused[row])

    def cut(self, found: dict[int, list[int]]) -> dict[int, list[int]]:
        """Each row's guesses cut to the width with the most expected tokens per cost. When that is none,
        the evidence of the rows that had a guess fades towards the prior, so that a row which refused
        its guesses for a while is tried again later (its text may start copying)."""
        best = self.best({row: len(guess) for row, guess in found.items()})
        if best == 0:
            for row in (row for row, guess in found.items() if guess):
                self.kept[row] = self.kept[row] * self.DECAY + self.prior[0] * (1 - self.DECAY)
                self.refused[row] = self.refused[row] * self.DECAY + self.prior[1] * (1 - self.DECAY)
        return {row: guess[:best] for row, guess in found.items()}

    def best(self, lengths: dict[int, int]) -> int:
        """The width with the most expected tokens per cost, for rows that can guess up to `lengths` tokens;
        after a call whose guesses were all kept, not narrower than it while that width beats a call
        without guesses (the line priced from few calls would otherwise narrow a run of right guesses,
        and each call more costs one of the model)."""
        longest = max(lengths.values(), default=0)
        per_cost = self.tokens_per_cost(lengths, longest)
        narrowest = min(self.least, longest)
        floor = min(self.floor, longest)
        if per_cost[floor] > per_cost[0]:
            narrowest = max(narrowest, floor)
        return max(range(narrowest, longest + 1), key=per_cost.__getitem__)

    def tokens_per_cost(self, lengths: dict[int, int], longest: int) -> list[float]:
        """The expected tokens per cost of a call of each width from 0 to `longest`, in one pass over
        each row's guesses (prompt lookup may offer 1024 guesses a row)."""
        gains = [float(len(lengths))] + [0.0] * longest  # [w]: the tokens the w-th guesses add, over the rows
        for row, length in lengths.items():
            chance, reach = self.chance(row), 1.0
            for width in range(1, min(longest, length) + 1):
                reach *= chance
                gains[width] += reach
        return [tokens / (self.call + (self.position + self.guess) * width)
                for width, tokens in enumerate(itertools.accumulate(gains))]

    def learn(self, guessed: dict[int, int], kept: dict[int, int]) -> None:
        """guessed, kept: per row, how many guesses it was fed and how many it kept."""
        self.floor = max(guessed.values(), default=0) if all(kept[row] == guessed[row] for row in guessed) else 0
        for row, count in guessed.items():
            if count:
                self.kept[row] = self.kept[row] * self.DECAY + kept[row]
                self.refused[row] = self.refused[row] * self.DECAY + (kept[row] < count)

    def clock(self, guess_seconds: float, guesses: int, call_seconds: float, width: int) -> None:
        """Price a call, a fed position and a guess in seconds, from one call: `guesses` guesses written
        in guess_seconds, and the model's call over 1 + width positions in call_seconds. A call timed at
        no seconds (a clock too coarse to see it) leaves the prices as they were."""
        if call_seconds <= 0:
            return
        if guesses:
            self.guess = self.recent(self.guess if self.call_seconds else None, guess_seconds / guesses)
        self.call_seconds[width] = self.recent(self.call_seconds.get(width), call_seconds)
        self.call, self.position = call_line(self.call_seconds)

    def recent(self, before: float | None, now: float) -> float:
        return now if before is None else before * self.DECAY + now * (1 - self.DECAY)


def call_line(call_seconds: dict[int, float]) -> tuple[float, float]:
    """(seconds of a call, seconds per guess it is fed) fitted to the calls' seconds per width (a model's
    call is far from proportional to its positions: SmolLM2 float32 on 2 cores, 30 ms for 1 to 3, 57 ms
    for 7, 71 ms for 20). From one width alone, a position is priced at EXTRA_POSITION_COST of a call."""
    widths, seconds = list(call_seconds), list(call_seconds.values())
    if len(widths) == 1:
        call = seconds[0] / (1 + EXTRA_POSITION_COST * widths[0])
        return call, EXTRA_POSITION_COST * call
    mean_width, mean_seconds = sum(widths) / len(widths), sum(seconds) / len(seconds)
    spread = sum((width - mean_width) ** 2 for width in widths)
    slope = max(0.0, sum((w - mean_width) * (t - mean_seconds) for w, t in zip(widths, seconds)) / spread)
    return max(mean_seconds - slope * mean_width, min(seconds) / 2), slope


MAX_LOOKUP_TOKENS = 1024
# An assistant's chance of a kept guess before any was fed (SmolLM2's int8 copy: 0.8-0.99), weighing a
# fifth of one refused guess, so that one call's evidence outweighs it.
ASSISTANT_PRIOR = (0.97, 0.2)


def check_assistant(config, model) -> None:
    """assistant_model: a model of the same kind scoring the same vocabulary, without beams; not with prompt lookup."""
    assistant = config.assistant_model
    if not callable(assistant) or not hasattr(assistant, "config"):
        raise TypeError(f"assistant_model must be a transformers causal LM (a runner resolves a folder, a runner or "
                        f"'int8' into one), got {type(assistant).__name__}")
    if config.prompt_lookup_num_tokens is not None:
        raise ValueError("prompt_lookup_num_tokens and assistant_model are two sources of guesses; pass one of them")
    if bool(model.config.is_encoder_decoder) != bool(assistant.config.is_encoder_decoder):
        kinds = {True: "an encoder-decoder model", False: "a decoder-only model"}
        raise ValueError(f"assistant_model is {kinds[bool(assistant.config.is_encoder_decoder)]} but the model is "
                         f"{kinds[bool(model.config.is_encoder_decoder)]}: an assistant must be of the same kind "
                         "(it reads the same input and grows the same sequences)")
    if config.num_beams > 1:
        raise ValueError("assistant_model speeds up greedy decoding and sampling, not beam search; pass num_beams=1 "
                         "or drop assistant_model")
    check_guess_count("num_assistant_tokens", config.num_assistant_tokens, "guesses per call at most")
    threshold = config.assistant_confidence_threshold
    if isinstance(threshold, bool) or not isinstance(threshold, int | float) or not 0 <= threshold <= 1:
        raise ValueError(f"assistant_confidence_threshold must be a number from 0 to 1 (the assistant stops guessing "
                         f"at a token it gives less; 0 never stops early), got {threshold!r}")
    ours, theirs = vocabulary_rows(model), vocabulary_rows(assistant)
    if ours != theirs:
        raise ValueError(f"assistant_model scores {theirs} tokens but the model {ours}: an assistant must share the "
                         "model's vocabulary (the same tokenizer)")


def vocabulary_rows(model) -> int | None:
    """How many token ids the model's output layer scores."""
    head = model.get_output_embeddings()
    size = getattr(head, "out_features", None)
    return size if isinstance(size, int) else getattr(model.config, "vocab_size", None)


def check_prompt_lookup(config) -> None:
    """prompt_lookup_num_tokens: a positive int, without beams or a processor that runs the model."""
    check_guess_count("prompt_lookup_num_tokens", config.prompt_lookup_num_tokens, "tokens guessed per step, e.g. 10")
    if config.num_beams > 1:
        raise ValueError(f"prompt_lookup_num_tokens speeds up greedy decoding, not beam search (num_beams="
                         f"{config.num_beams}); pass num_beams=1 or drop prompt_lookup_num_tokens")
    if config.guidance_scale not in (None, 1, 1.0):
        raise ValueError("prompt_lookup_num_tokens cannot be combined with guidance_scale (its unconditional pass "
                         "reads one token per step); drop one of them")


def check_guess_count(name: str, value, meaning: str) -> None:
    """A number of guesses (prompt_lookup_num_tokens, num_assistant_tokens): an int from 1 to MAX_LOOKUP_TOKENS."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_LOOKUP_TOKENS:
        raise ValueError(f"{name} must be an int from 1 to {MAX_LOOKUP_TOKENS} ({meaning}), got {value!r}")


def lookup_draft(row: list[int], num_tokens: int, max_ngram: int = MAX_MATCHING_NGRAM,
                 article: Sequence[int] = ()) -> list[int]:
    """Up to `num_tokens` tokens that followed the earliest earlier occurrence of the row's last n-gram
    (the longest n <= max_ngram that matches), as transformers' prompt lookup proposes them; for an
    n-gram the row's text does not repeat, what followed it in `article` (an encoder-decoder model's
    input, `articles`), which transformers does not search."""
    for size in range(min(max_ngram, len(row) - 1), 0, -1):
        tail = row[-size:]
        follows = following(row, tail, num_tokens) or following(article, tail, num_tokens)
        if follows:
            return follows
    return []


def following(text: Sequence[int], tail: list[int], num_tokens: int) -> list[int]:
    """The up to `num_tokens` tokens after the earliest occurrence of `tail` in `text` that has any."""
    size = len(tail)
    for begin in range(len(text) - size):
        if list(text[begin:begin + size]) == tail:
            return list(text[begin + size:begin + size + num_tokens])
    return []


def articles(model, input_ids: torch.Tensor, attention_mask: torch.Tensor | None, rows: int) -> list[list[int]]:
    """What prompt lookup searches besides each row's own text: an encoder-decoder model's input (a
    summary copies phrases of its article, which the decoder's text alone, all transformers searches,
    does not hold), one list per row; searched for an n-gram the row's text does not repeat. Empty
    for decoder-only models, whose text starts with the prompt, and for a decoder that writes another
    vocabulary than its encoder reads (Marian's share_encoder_decoder_embeddings=False)."""
    config = model.config
    if not config.is_encoder_decoder or getattr(config, "share_encoder_decoder_embeddings", True) is False:
        return [[] for _ in range(rows)]
    mask = attention_mask if attention_mask is not None else torch.ones_like(input_ids)
    per_input = [ids[real.bool()].tolist() for ids, real in zip(input_ids, mask)]
    expand = rows // len(per_input)  # samples per input
    return [per_input[row // expand] for row in range(rows)]


def drafts(sequences: torch.Tensor, running: torch.Tensor, num_tokens: int,
           before: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """(tokens (rows, K), valid (rows, K)) of each running row's guess, padded to the longest; K may be 0.
    before: per row, what the lookup searches besides the row's text (`articles`)."""
    rows = sequences.tolist()
    guesses = [lookup_draft(row, num_tokens, article=before[index]) if bool(running[index]) else []
               for index, row in enumerate(rows)]
    width = max(map(len, guesses), default=0)
    tokens = torch.zeros((len(rows), width), dtype=torch.long, device=sequences.device)
    valid = torch.zeros((len(rows), width), dtype=torch.bool, device=sequences.device)
    for index, guess in enumerate(guesses):
        tokens[index, :len(guess)] = torch.tensor(guess, dtype=torch.long)
        valid[index, :len(guess)] = True
        tokens[index, len(guess):] = rows[index][-1]  # any real id: the model reads it, nobody keeps it
    return tokens, valid


class LookupDrafts:
    """Guesses from the text itself (prompt lookup), and from an encoder-decoder model's input (`articles`),
    as many as transformers' "heuristic" schedule allows: +2 after a call that kept them all, -1 after one
    that did not, within 1..num_tokens."""

    def __init__(self, before: list[list[int]], num_tokens: int):
        self.before, self.num_tokens, self.width = before, num_tokens, num_tokens

    def propose(self, sequences: torch.Tensor, running: torch.Tensor, room: int):
        return drafts(sequences, running, min(self.width, room), self.before)

    def learn(self, guessed: int, kept: int, call_seconds: float) -> None:
        self.width = next_width(self.width, self.num_tokens, all_kept=kept == guessed)

    def kept(self, length: int) -> None:
        """Nothing to take back: the guesses are read from the sequences."""


def start_assistant(assistant, input_ids: torch.Tensor, attention_mask: torch.Tensor | None, sequences: torch.Tensor,
                    max_length: int) -> tuple[torch.Tensor, ModelState, torch.Tensor]:
    """The assistant's own call: its prompt (or decoder start token) per row of `sequences`, its state
    after the prefill, and its logits for the first new token. An encoder-decoder assistant starts from
    the target's start token, so both grow the same sequences."""
    mask = attention_mask if attention_mask is not None or assistant.config.is_encoder_decoder \
        else torch.ones_like(input_ids)
    start_id = int(sequences[0, 0]) if assistant.config.is_encoder_decoder else None
    expand = sequences.shape[0] // input_ids.shape[0]  # samples per input
    prompt, state = start(assistant, input_ids, mask, expand=expand, decoder_start_token_id=start_id,
                          max_length=max_length, shared_cross_attention=False)
    return prompt, state, prefill(assistant, prompt, state)


class AssistantDrafts:
    """Guesses from a smaller model with the same vocabulary, decoding on its own cache.

    At each call the assistant first reads the tokens the sequences gained since its last call, then
    writes up to `num_tokens` tokens, as many as give the most tokens per cost (`GuessWidth`: the
    batch's chance of keeping a guess, and in greedy decoding what an assistant step costs against
    the model's call, on the clock); `kept(length)` takes its cache back to the tokens the target
    kept. With `sampling`, it draws its guesses and keeps the distributions it drew them from in
    `probabilities` (rows, width, vocab), which the target's accept/reject rule needs.
    """

    def __init__(self, assistant, input_ids: torch.Tensor, attention_mask: torch.Tensor | None, max_length: int,
                 sequences: torch.Tensor, num_tokens: int, processors: Sequence[Processor] = (),
                 sampling: bool = False, confidence: float = 0.0):
        """input_ids, attention_mask: the call's input (the prompt, or what the encoders read);
        sequences: the target's rows before the first new token (one per sample of an input); an
        encoder-decoder assistant starts from their start token, so both grow the same sequences;
        confidence: stop guessing after a guess the assistant gives less probability than this, in any
        running row (transformers' assistant_confidence_threshold): the guesses after it are rarely kept."""
        self.model, self.processors, self.sampling, self.confidence = assistant, processors, sampling, confidence
        prompt, self.state, self.logits = start_assistant(assistant, input_ids, attention_mask, sequences, max_length)
        self.read = prompt.shape[1]  # positions of the sequences in the assistant's cache
        self.probabilities = None
        # the batch moves on as one; an assistant is expected to be mostly right (transformers starts at
        # num_assistant_tokens guesses), so the widths start wide and narrow if it is not
        self.num_tokens, self.width = num_tokens, GuessWidth(1, least=1, prior=ASSISTANT_PRIOR)
        self.seconds = 0.0  # the last proposal's, on the clock

    def propose(self, sequences: torch.Tensor, running: torch.Tensor, room: int):
        started = time.perf_counter()
        width = self.width.best({0: min(self.num_tokens, room)})
        new = sequences[:, self.read:]
        logits = decode_ahead(self.model, new, self.state)[:, -1] if new.shape[1] else self.logits
        guesses, drawn_from, context = [], [], sequences
        for index in range(width):  # the call's processors guide the guesses too, as in transformers' assisted decoding
            scores = run_processors(self.processors, context, logits)
            # the distribution over the vocabulary, only when a draw or the confidence stop reads it
            probabilities = torch.softmax(scores, dim=-1) if self.sampling or self.confidence > 0 else None
            if self.sampling:
                drawn_from.append(probabilities)
                guesses.append(torch.multinomial(probabilities, 1).squeeze(1))
            else:
                guesses.append(scores.argmax(dim=-1))
            context = torch.cat([context, guesses[-1][:, None]], dim=-1)
            if index + 1 == width or (probabilities is not None and self.unsure(probabilities, guesses[-1], running)):
                break
            logits = decode_step(self.model, guesses[-1], self.state)
        self.read = sequences.shape[1]
        self.probabilities = torch.stack(drawn_from, dim=1) if self.sampling else None
        tokens = torch.stack(guesses, dim=1)
        self.seconds = time.perf_counter() - started
        return tokens, torch.ones_like(tokens, dtype=torch.bool)

    def learn(self, guessed: int, kept: int, call_seconds: float) -> None:
        """What the batch kept of the guesses; greedy also learns their cost from the clock."""
        self.width.learn({0: guessed}, {0: kept})
        if not self.sampling:
            self.width.clock(self.seconds, guessed, call_seconds, guessed)

    def unsure(self, probabilities: torch.Tensor, guesses: torch.Tensor, running: torch.Tensor) -> bool:
        """Whether a running row's guess has less probability than the confidence threshold."""
        chosen = probabilities.gather(1, guesses[:, None]).squeeze(1)
        return bool(((chosen < self.confidence) & running).any())

    def kept(self, length: int) -> None:
        """The sequences' first `length` tokens are settled: the assistant's cache keeps at most those."""
        self.read = min(self.state.cache.get_seq_length(), length)
        rewind(self.state, self.read)


def speculative_steps(model, sequences: torch.Tensor, state: ModelState, logits: torch.Tensor, *,
                      processors: Sequence[Processor], stop: StopCriteria, pad_token_id: int | None,
                      source, choose=greedy, tracer=None,
                      acceptance: Acceptance | None = None) -> Iterator[torch.Tensor]:
    """Decoding with guesses; yields the sequences (rows, len) after each token, as the token loop does.

    sequences: (rows, start_len) after the prefill; logits: (rows, vocab) for the first new token.
    source: where guesses come from (LookupDrafts, AssistantDrafts).
    choose: greedy or sample (token_loop.py). With `sample`, each verified position draws its token
    from the model's distribution and a guess is kept when the draw equals it, which is the standard
    accept/reject rule for a guess proposed with certainty: the tokens are distributed as plain
    sampling's (and under one seed are drawn in the same order, one multinomial per position).
    """
    acceptance = acceptance if acceptance is not None else Acceptance()
    unfinished = torch.ones(sequences.shape[0], dtype=torch.long, device=sequences.device)
    fed = sequences.shape[1]  # positions in the cache (decoder-only: the prompt; encoder-decoder: the start token)

    def append(sequences, unfinished, step_logits, chooser=choose):
        """One step on given logits, exactly as the token loop makes it."""
        scores = run_processors(processors, sequences, step_logits)
        chosen = pad_if_finished(chooser(scores), unfinished, stop, pad_token_id)
        if tracer is not None:
            tracer.record(step_logits, scores, chosen)
        return append_tokens(sequences, chosen, unfinished, stop, pad_token_id)

    sequences, unfinished, last = append(sequences, unfinished, logits)
    yield sequences
    while unfinished.max() > 0:
        room = stop.max_length - sequences.shape[1] - 1  # a call keeps its guesses and one token more
        guesses, valid = source.propose(sequences, unfinished.bool(), room) if room > 0 else (None, None)
        acceptance.calls += 1
        if guesses is None or guesses.shape[1] == 0:  # nothing to guess from, or no room: a plain step
            step_logits = decode_step(model, last, state)
            fed += 1
            sequences, unfinished, last = append(sequences, unfinished, step_logits)
            yield sequences
            acceptance.tokens += 1
            continue
        started = time.perf_counter()
        ahead = decode_ahead(model, torch.cat([last[:, None], guesses], dim=1), state)  # (rows, K + 1, vocab)
        call_seconds = time.perf_counter() - started
        running = unfinished.bool()
        acceptance.proposed += int(valid[running].sum())
        kept = 0
        sequences, unfinished, last = append(sequences, unfinished, ahead[:, 0], verifier(source, guesses, 0, choose))
        yield sequences
        while kept < guesses.shape[1] and unfinished.max() > 0 and guess_taken(last, guesses[:, kept], valid[:, kept],
                                                                               unfinished):
            kept += 1
            sequences, unfinished, last = append(sequences, unfinished, ahead[:, kept],
                                                 verifier(source, guesses, kept, choose))
            yield sequences
        acceptance.accepted += kept * int(running.sum())
        source.learn(guesses.shape[1], kept, call_seconds)
        acceptance.tokens += kept + 1
        fed += 1 + kept  # the last token fed before, and the guesses kept
        rewind(state, fed)
        source.kept(fed)


def verifier(source, guesses: torch.Tensor, position: int, choose):
    """How the token at a verified position is chosen: as without guesses (greedy, or a draw compared
    with a guess proposed with certainty), or, for guesses drawn from a distribution, by the
    speculative-sampling rule against that distribution."""
    drawn_from = getattr(source, "probabilities", None)
    if drawn_from is None or position >= guesses.shape[1]:
        return choose
    return lambda scores: accept_or_resample(scores, guesses[:, position], drawn_from[:, position])


def accept_or_resample(scores: torch.Tensor, guess: torch.Tensor, drawn_from: torch.Tensor) -> torch.Tensor:
    """Speculative sampling (Leviathan et al. 2023, Chen et al. 2023): keep the guess g with probability
    min(1, p(g) / q(g)), else draw from max(p - q, 0) renormalised; the token is then distributed as p.

    scores: (rows, vocab) the target's processed scores (p = softmax); guess: (rows,);
    drawn_from: (rows, vocab) the distribution q the guess was drawn from.
    """
    target = torch.softmax(scores, dim=-1)
    rows = torch.arange(scores.shape[0], device=scores.device)
    keep = torch.rand(scores.shape[0], device=scores.device) * drawn_from[rows, guess] < target[rows, guess]
    residual = (target - drawn_from).clamp(min=0)
    total = residual.sum(dim=-1, keepdim=True)
    residual = torch.where(total > 0, residual / total.clamp(min=1e-30), target)  # p == q: nothing to correct
    return torch.where(keep, guess, torch.multinomial(residual, 1).squeeze(1))


def next_width(width: int, num_tokens: int, *, all_kept: bool) -> int:
    """transformers' "heuristic" schedule: +2 guesses after a call that kept them all, -1 after one that did not."""
    return min(num_tokens, width + 2) if all_kept else max(1, width - 1)


def guess_taken(chosen: torch.Tensor, guess: torch.Tensor, valid: torch.Tensor, unfinished: torch.Tensor) -> bool:
    """Whether every running row's choice equals its guess at this position (finished rows agree with anything)."""
    running = unfinished.bool()
    return bool(((chosen == guess) & valid | ~running).all())
