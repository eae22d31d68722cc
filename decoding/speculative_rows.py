"""Speculative decoding of a batch in which every row keeps all the guesses it accepted.

The aligned loop (decoding/speculative.py) keeps, at each call, the fewest guesses any running row
accepted, so one row that copies nothing holds back a row that copies a whole paragraph. Here each
row moves on by its own count. Every row is still fed the same number of positions per call (one
rectangular forward pass); the positions a row did not keep become holes: its attention mask is 0
there and its position ids skip them, so its next token sees exactly its own text, numbered
0..n-1, as in plain decoding. The cache is cut back after the row that kept the most; when holes
take more than a quarter of it, each row's kept positions are gathered to the right end, which
turns the holes into left padding (the layout of a padded prompt). Rows that finished leave the
cache, a quarter of the batch at a time, so the model stops computing them.

Processors that read only the scores (the sampling warpers, suppress_tokens...) run on every fed
position at once. Those that read the sequence (no_repeat_ngram_size, min_new_tokens, the repetition
penalty...) run row by row, on each row's own sequence, built for that row alone
(generation.one_row_processors), position after position as the row walks its guesses: the work
plain decoding does for each token it adds.

An encoder-decoder model's decoder takes no position ids: decoding/row_positions.py gives each row
its own positions where the decoder reads them from a table (BART, mBART, Marian, Pegasus, M2M100),
and for T5, whose attention measures distances between cache slots, the holes are closed after
every call that leaves some. Rows that leave also take their encoder output and cross-attention
cache with them.

This applies when no row's answer depends on the other rows: a model whose self-attention cache
layers nopipe preallocates (decoder-only, or encoder-decoder as above, each row with its own encoder
output), processors that can be built for one row (not the caller's own logits processors,
prefix_allowed_tokens_fn, which is told the batch index, or guidance), finished rows padded (EOS
ids and a pad id), no trace and no stopping_criteria of the caller's (they may read the whole
batch), prompt-lookup guesses or an assistant's (decoding/assistant_rows.py). Otherwise the
aligned loop runs; both give plain decoding's tokens. The number of prompt-lookup guesses a call
feeds is chosen for the most tokens per cost (`GuessWidth`), not by transformers' +2/-1 schedule,
which a batch would drag down to its least lucky row.
"""

import time
from collections.abc import Sequence

import torch

from decoding import row_positions
from decoding.cache import PreallocatedLayer
from decoding.model_step import ModelState, decode_ahead
from decoding.processor_chain import reads_ids
from decoding.processors import Processor, run_processors
from decoding.speculative import Acceptance, GuessWidth, lookup_draft
from decoding.stopping import StopCriteria

HOLES_BEFORE_CLOSING = 0.25  # the share of the cache that may be holes before rows are gathered to the right


def rows_can_keep_their_own(model, state: ModelState, processors: Sequence[Processor], stop: StopCriteria,
                            pad_token_id: int | None, tracer, rows: int, row_processors=None) -> bool:
    """Whether a batch may accept guesses per row (the conditions in the module docstring).

    row_processors: row -> that row's own processors, or None when the call's processors couple the rows."""
    return (rows > 1 and tracer is None and stop.eos is not None
            and pad_token_id is not None and not stop.extra and cache_can_keep_rows(model, state, rows)
            and (row_processors is not None or not any(reads_ids(processor) for processor in processors)))


def cache_can_keep_rows(model, state: ModelState, rows: int) -> bool:
    """Whether the model's cache can hold holes per row: self-attention layers nopipe preallocates and,
    for an encoder-decoder model, positions it can number per row and an encoder output per row."""
    layers = getattr(state.self_attention_cache, "layers", None)
    return (bool(layers) and all(type(layer) is PreallocatedLayer for layer in layers)
            and (not state.is_encoder_decoder or encoder_rows_can_leave(model, state, rows)))


def encoder_rows_can_leave(model, state: ModelState, rows: int) -> bool:
    """An encoder-decoder model: its decoder can number each row's positions (decoding/row_positions.py)
    and each row has its own encoder output (not one per input shared by its samples), so rows can leave."""
    return row_positions.layout(model) is not None and encoder_output_rows(state) == rows


def encoder_output_rows(state: ModelState) -> int:
    return state.encoder_outputs["last_hidden_state"].shape[0]


class Rows:
    """Each row's text so far (a python list, for lookups and stop checks) and whether it is finished."""

    def __init__(self, sequences: torch.Tensor, stop: StopCriteria, max_length: int, pad_token_id: int):
        self.texts = sequences.tolist()
        self.finished = [False] * len(self.texts)
        self.stop = stop
        self.buffer = torch.full((len(self.texts), max_length), pad_token_id, dtype=torch.long,
                                 device=sequences.device)  # the sequences as plain decoding returns them
        self.buffer[:, :sequences.shape[1]] = sequences

    def running(self) -> list[int]:
        return [row for row, done in enumerate(self.finished) if not done]

    def room(self, row: int) -> int:
        """How many guesses the row can still keep: a call adds them and one token of the model's own."""
        return self.stop.max_length - len(self.texts[row]) - 1

    def append(self, row: int, token: int) -> bool:
        """Add a token to one row; True when the row has just finished."""
        text = self.texts[row]
        text.append(token)
        self.buffer[row, len(text) - 1] = token
        self.finished[row] = bool(self.stop(self.buffer[row:row + 1, :len(text)])[0])
        return self.finished[row]

    def sequences(self) -> torch.Tensor:
        """(rows, longest) like plain decoding's: finished rows padded with the pad token."""
        return self.buffer[:, :max(map(len, self.texts))].clone()


def per_row_speculation(model, sequences: torch.Tensor, state: ModelState, logits: torch.Tensor, *,
                        processors: Sequence[Processor], stop: StopCriteria, pad_token_id: int, max_length: int,
                        choose, source, acceptance: Acceptance | None = None, row_processors=None) -> torch.Tensor:
    """Speculative decoding of a batch, each row keeping its own guesses; returns plain decoding's sequences.

    sequences: (rows, start_len) the prompts (or decoder start tokens) after the prefill; logits:
    (rows, vocab). source: where the guesses come from (LookupGuesses, assistant_rows.AssistantGuesses).
    row_processors: row -> that row's own processors, needed when a processor reads the sequences
    (rows then have different lengths, so each row's scores are processed on its own sequence).
    """
    acceptance = acceptance if acceptance is not None else Acceptance()
    relative = begin_own_positions(model, state, sequences)
    state.last_position = max_length - 1
    rows = Rows(sequences, stop, max_length, pad_token_id)
    first = choose(run_processors(processors, sequences, logits))  # every row has the same length here
    for row, token in enumerate(first.tolist()):
        rows.append(row, token)
    chains = None
    if any(reads_ids(processor) for processor in processors):
        chains = {row: row_processors(row) for row in range(len(rows.texts))}
    active = list(range(len(rows.texts)))  # the rows in the cache, in its order
    while rows.running():
        guesses = source.propose(rows, active)
        fed = feed_tokens(rows, active, guesses, width=max(map(len, guesses.values())))
        started = time.perf_counter()
        ahead = decode_ahead(model, fed, state)  # (active rows, K + 1, vocab)
        call_seconds = time.perf_counter() - started
        if chains is None and not source.draws:
            choices = choose_at_once(processors, ahead, active, choose)
        else:  # a row's own processors, or guesses drawn from a distribution, each kept by the rule of its draw
            choices = {row: ProcessedRow(rows, row, ahead[active.index(row)], chains[row] if chains else processors,
                                         choose, source.verifier(row) if source.draws else None) for row in guesses}
        kept = {row: walk_row(rows, row, choices[row], guesses[row]) for row in guesses}
        count(acceptance, guesses, kept)
        source.learn(guesses, kept, rows, active, call_seconds)
        keep_positions(state, kept, rows, active, fed_width=fed.shape[1], relative=relative)
        active = leave_finished(state, rows, active, also=source.states)
    return rows.sequences()


class LookupGuesses:
    """Prompt-lookup guesses, each row's cut to the width with the most expected tokens per cost."""

    states = ()  # no cache of its own
    draws = False  # guesses proposed with certainty: kept when the model's own choice equals them

    def __init__(self, num_tokens: int, rows: int, articles: list[list[int]] | None = None):
        """articles: per row, what the lookup searches besides the row's text (speculative.articles)."""
        self.num_tokens, self.articles, self.width = num_tokens, articles, GuessWidth(rows)

    def propose(self, rows: Rows, active: list[int]) -> dict[int, list[int]]:
        """{running row: its guesses}."""
        found = {row: lookup_draft(rows.texts[row], min(self.num_tokens, rows.room(row)),
                                   article=self.articles[row] if self.articles else ()) for row in rows.running()}
        return self.width.cut(found)

    def learn(self, guesses: dict[int, list[int]], kept: dict[int, int], rows: Rows, active: list[int],
              call_seconds: float) -> None:
        self.width.learn({row: len(guess) for row, guess in guesses.items()}, kept)


def feed_tokens(rows: Rows, active: list[int], guesses: dict[int, list[int]], width: int) -> torch.Tensor:
    """(active rows, 1 + width): each row's newest token, then its guesses; short rows and finished rows
    are filled with their newest token (read by the model, kept by nobody)."""
    fed = []
    for row in active:
        guess, newest = guesses.get(row, []), rows.texts[row][-1]
        fed.append([newest] + guess + [newest] * (width - len(guess)))
    return torch.tensor(fed, dtype=torch.long, device=rows.buffer.device)


def choose_at_once(processors: Sequence[Processor], ahead: torch.Tensor, active: list[int], choose) -> dict:
    """Every fed position's token, processed and chosen in one batch (processors that read only the
    scores). ahead: (active rows, K + 1, vocab) -> {row: [token at each position]}."""
    rows, positions, vocab = ahead.shape
    no_ids = torch.empty((rows * positions, 0), dtype=torch.long, device=ahead.device)
    scores = run_processors(processors, no_ids, ahead.reshape(rows * positions, vocab))
    return dict(zip(active, choose(scores).view(rows, positions).tolist()))


class ProcessedRow:
    """One row's token at each fed position, processed on demand on the row's own sequence (processors
    that read it: no_repeat_ngram_size, min_new_tokens...), as plain decoding processes that row.
    Position j is read after the row gained the guesses before it, so its sequence is the one plain
    decoding would have there. verify: position -> the chooser of a guess drawn from a distribution
    (speculative.accept_or_resample), or None where `choose` picks the token."""

    def __init__(self, rows: Rows, row: int, logits: torch.Tensor, processors: Sequence[Processor], choose,
                 verify=None):
        self.rows, self.row, self.logits, self.processors = rows, row, logits, processors
        self.choose, self.verify = choose, verify

    def __getitem__(self, position: int) -> int:
        sequence = self.rows.buffer[self.row:self.row + 1, :len(self.rows.texts[self.row])]
        scores = run_processors(self.processors, sequence, self.logits[position:position + 1])
        chooser = self.verify(position) if self.verify is not None else None
        return int((chooser or self.choose)(scores)[0])


def walk_row(rows: Rows, row: int, choices, guess: list[int]) -> int:
    """Append the row's choices while they confirm its guesses; returns how many guesses it kept.

    choices[j] is the token chosen after the newest token and guesses 0..j-1, read in order. The
    choice at the first guess that differs (or after the last guess) is the model's own next token,
    appended too.
    """
    for position, guessed in enumerate(guess):
        token = choices[position]
        if rows.append(row, token) or token != guessed:
            return position
    rows.append(row, choices[len(guess)])
    return len(guess)


def count(acceptance: Acceptance, guesses: dict[int, list[int]], kept: dict[int, int]) -> None:
    acceptance.calls += 1
    acceptance.proposed += sum(map(len, guesses.values()))
    acceptance.accepted += sum(kept.values())
    acceptance.tokens += max(kept.values()) + 1


def begin_own_positions(model, state: ModelState, sequences: torch.Tensor) -> bool:
    """Make an encoder-decoder state, after the decoder start token, ready for rows of their own: a
    decoder mask, and positions for a decoder with a position table. True when the decoder measures
    distances between cache slots instead (T5): then no row may keep holes between two calls."""
    if not state.is_encoder_decoder:
        return False
    length = state.self_attention_cache.get_seq_length()
    state.decoder_mask = torch.ones((sequences.shape[0], length), dtype=torch.long, device=sequences.device)
    if row_positions.layout(model) == row_positions.RELATIVE:
        return True
    state.next_positions = torch.full((sequences.shape[0], 1), length, dtype=torch.long, device=sequences.device)
    return False


def keep_positions(state: ModelState, kept: dict[int, int], rows: Rows, active: list[int], fed_width: int,
                   relative: bool = False) -> None:
    """After a call that fed `fed_width` positions: each running row keeps its newest token and the
    guesses it kept; the rest become holes. relative: see keep_fed."""
    keep = [1 + kept[row] if not rows.finished[row] else 0 for row in active]
    keep_fed(state, torch.tensor(keep, device=rows.buffer.device), fed_width, relative)


def keep_fed(state: ModelState, keep: torch.Tensor, fed_width: int, relative: bool = False) -> None:
    """Of the last `fed_width` positions of the cache, row i keeps its first keep[i] (rows,); the rest
    become holes, and the cache ends after the row that kept the most. relative: the model reads
    distances between cache slots, so holes are closed at once."""
    cache = state.self_attention_cache
    cache_length = cache.get_seq_length()
    before = cache_length - fed_width
    length = before + int(keep.max())
    mask = state.self_attention_mask if state.self_attention_mask is not None else torch.ones(
        (len(keep), cache_length), dtype=torch.long, device=keep.device)
    mask = mask[:, :length].clone()
    new = torch.arange(int(keep.max()), device=mask.device)[None, :]
    mask[:, before:] = (new < keep[:, None]).long()
    state.self_attention_mask = mask
    if state.next_positions is not None:
        state.next_positions = state.next_positions - fed_width + keep[:, None]
    for layer in cache.layers:
        layer.crop(length)
    if has_holes(mask) if relative else (mask == 0).sum() > HOLES_BEFORE_CLOSING * mask.numel():
        close_holes(state)


def has_holes(mask: torch.Tensor) -> bool:
    """Whether a row attends to a position after one it skips (left padding alone is no hole)."""
    return bool(((mask.cummax(dim=1).values == 1) & (mask == 0)).any())


def leave_finished(state: ModelState, rows: Rows, active: list[int], also: Sequence[ModelState] = ()) -> list[int]:
    """Take finished rows out of the cache once they are a quarter of it (a copy of the cache, so not one
    by one): the model stops computing rows nobody reads. also: states whose rows leave with them (an
    assistant's). Returns the rows left, in cache order."""
    staying = [index for index, row in enumerate(active) if not rows.finished[row]]
    if not staying or len(active) - len(staying) < max(1, len(active) // 4):
        return active
    index = torch.tensor(staying, device=rows.buffer.device)
    for each in (state, *also):
        keep_cache_rows(each, index)
    return [active[i] for i in staying]


def keep_cache_rows(state: ModelState, index: torch.Tensor) -> None:
    """Keep these rows of the state's cache, mask, positions and encoder side, in this order."""
    for layer in state.self_attention_cache.layers:
        layer.keep_rows(index)
    state.self_attention_mask = state.self_attention_mask.index_select(0, index)
    if state.next_positions is not None:
        state.next_positions = state.next_positions.index_select(0, index)
    if state.is_encoder_decoder:
        keep_encoder_rows(state, index)


def keep_encoder_rows(state: ModelState, index: torch.Tensor) -> None:
    """The encoder's side of rows leaving: its outputs, its mask and the cross-attention cache."""
    for key, value in state.encoder_outputs.items():
        if isinstance(value, torch.Tensor):
            state.encoder_outputs[key] = value.index_select(0, index)
    if state.attention_mask is not None:
        state.attention_mask = state.attention_mask.index_select(0, index)
    state.cache.cross_attention_cache.batch_select_indices(index)


def close_holes(state: ModelState) -> None:
    """Gather each row's kept positions to the right end of the cache: holes become left padding."""
    mask = state.self_attention_mask
    kept = mask.sum(dim=1)
    length = int(kept.max())
    # Stable sort: holes (0) first, then the kept positions in their order; the last `length` are kept.
    order = torch.sort(mask, dim=1, stable=True).indices[:, -length:]
    state.self_attention_mask = torch.gather(mask, 1, order)
    for layer in state.self_attention_cache.layers:
        layer.gather_positions(order)
