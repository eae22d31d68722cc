"""An assistant model's guesses for a batch whose rows keep their own (decoding/speculative_rows.py).

The assistant decodes on a cache of its own, all rows in one batch as the target does. After the
target walked the guesses, each row of the assistant's cache keeps the guesses that row kept; the
positions of the ones it refused become holes, as in the target's cache. At the next call each row
first reads what its text gained since (the target's own token, and the last guess when it kept
them all: one or two tokens), then the rows write their guesses: as many as give the batch the most
tokens per cost (speculative.GuessWidth: each row's chance of keeping a guess, and in greedy decoding
what an assistant step costs against the model's call, on the clock), and every row stops after a
guess the assistant is unsure of in any row (assistant_confidence_threshold).

Sampling: the assistant draws its guesses and keeps, per row, the distribution each was drawn from;
the target keeps a guess with probability min(1, p/q), else replaces it by a draw from max(p - q, 0)
(speculative.accept_or_resample), so every token is distributed as the target's own.
"""

import time
from collections.abc import Sequence

import torch

from decoding.model_step import decode_ahead, decode_step
from decoding.processor_chain import reads_ids
from decoding.processors import Processor, run_processors
from decoding.speculative import ASSISTANT_PRIOR, GuessWidth, accept_or_resample, start_assistant
from decoding.speculative_rows import Rows, begin_own_positions, keep_fed


class AssistantGuesses:
    """The source of guesses per_row_speculation asks: propose(rows, active), then learn(...) what was kept."""

    def __init__(self, assistant, input_ids: torch.Tensor, attention_mask: torch.Tensor | None,
                 sequences: torch.Tensor, *, max_length: int, processors: Sequence[Processor], row_processors,
                 num_tokens: int, confidence: float, sampling: bool = False):
        """input_ids, attention_mask: the call's input; sequences: the target's rows before the first new
        token; max_length: the call's (the rows' longest); processors, row_processors: the call's, which
        guide the guesses as in transformers' assisted decoding (row_processors: row -> that row's own,
        used when a processor reads the text); sampling: draw the guesses, and keep each by the
        speculative-sampling rule against the distribution it was drawn from (`verifier`)."""
        prompt, self.state, _ = start_assistant(assistant, input_ids, attention_mask, sequences,
                                                max_length + num_tokens + 1)  # room for a call's guesses
        self.state.last_position = max_length - 1
        self.relative = begin_own_positions(assistant, self.state, prompt)
        self.model, self.processors, self.confidence = assistant, processors, confidence
        self.chains = {}
        if any(reads_ids(processor) for processor in processors):
            self.chains = {row: row_processors(row) for row in range(sequences.shape[0])}
        self.states = (self.state,)  # rows leave the assistant's cache with the target's
        self.read = [prompt.shape[1]] * sequences.shape[0]  # each row's tokens in the assistant's cache
        self.num_tokens, self.width = num_tokens, GuessWidth(sequences.shape[0], least=1,
                                                                   prior=ASSISTANT_PRIOR)
        self.seconds = 0.0  # the last proposal's, on the clock
        self.fed = 0  # guessing steps the last call fed to the assistant (a row's first guesses, as many)
        self.draws = sampling  # the target keeps each guess by the rule of its draw (`verifier`)
        self.guessed, self.drawn_from = {}, {}  # sampling: the last call's guesses, the distributions drawn from

    def propose(self, rows: Rows, active: list[int]) -> dict[int, list[int]]:
        """{running row: its guesses}: every row stops after a guess the assistant is unsure of in any row.
        (Letting the sure rows go on was measured slower on a mixed batch: 0.81x plain greedy against 0.87x;
        the batch needs as many calls as its least sure row, and each further guess costs an assistant step.)"""
        started = time.perf_counter()
        logits = self.catch_up(rows, active)
        guesses = {row: [] for row in active if not rows.finished[row]}
        guessing = {row for row in guesses if rows.room(row) > 0}
        width = self.width.best({row: min(self.num_tokens, rows.room(row)) for row in guessing})
        self.fed = 0
        self.drawn_from = {row: [] for row in guesses}
        for step in range(width):
            scores = self.processed(rows, active, guessing, guesses, logits)
            probabilities = torch.softmax(scores, dim=-1) if self.draws else None
            tokens = torch.multinomial(probabilities, 1).squeeze(1) if self.draws else scores.argmax(dim=-1)
            unsure = self.unsure(scores, tokens, probabilities)
            wrote = set(guessing)
            for index, (row, token) in enumerate(zip(active, tokens.tolist())):
                if row in wrote:
                    guesses[row].append(token)
                    if self.draws:
                        self.drawn_from[row].append(probabilities[index])
                    if len(guesses[row]) == rows.room(row):
                        guessing.discard(row)
            doubted = any(doubt for row, doubt in zip(active, unsure) if row in wrote)
            if step + 1 == width or not guessing or doubted:
                break
            self.fed += 1
            fed = [token if row in wrote else rows.texts[row][-1] for row, token in zip(active, tokens.tolist())]
            logits = decode_step(self.model, torch.tensor(fed, device=tokens.device), self.state)
        self.guessed = guesses
        self.seconds = time.perf_counter() - started
        return guesses

    def verifier(self, row: int):
        """position -> how the target chooses at the row's sampled guess there (kept with probability
        min(1, p/q), else replaced by a draw from max(p - q, 0)), or None after its last guess."""
        drawn_from, guess = self.drawn_from[row], self.guessed[row]

        def verify(position: int):
            if position >= len(guess):
                return None  # after the last guess: the model's own draw
            token = torch.tensor([guess[position]], device=drawn_from[position].device)
            return lambda scores: accept_or_resample(scores, token, drawn_from[position][None])
        return verify

    def catch_up(self, rows: Rows, active: list[int]) -> torch.Tensor:
        """Feed each running row what its text gained since the assistant last read it (short rows and
        finished ones filled with their newest token, which become holes). -> (active rows, vocab) the
        assistant's logits after each row's newest token."""
        unread = [rows.texts[row][self.read[row]:] if not rows.finished[row] else [] for row in active]
        width = max(map(len, unread))
        block = [tokens + [rows.texts[row][-1]] * (width - len(tokens)) for row, tokens in zip(active, unread)]
        ahead = decode_ahead(self.model, torch.tensor(block, device=rows.buffer.device), self.state)
        keep = torch.tensor([len(tokens) for tokens in unread], device=rows.buffer.device)
        keep_fed(self.state, keep, width, self.relative)
        for row, tokens in zip(active, unread):
            self.read[row] += len(tokens)
        return ahead[torch.arange(len(active)), (keep - 1).clamp(min=0)]

    def processed(self, rows: Rows, active: list[int], guessing: set[int], guesses: dict[int, list[int]],
                  logits: torch.Tensor) -> torch.Tensor:
        """The call's processors on the assistant's logits (active rows, vocab), each guessing row's on its
        text and guesses so far when a processor reads them."""
        if not self.chains:
            return run_processors(self.processors, logits.new_empty((len(active), 0), dtype=torch.long), logits)
        scores = logits.clone()
        for index, row in enumerate(active):
            if row in guessing:
                text = rows.buffer[row:row + 1, :len(rows.texts[row])]
                text = torch.cat([text, text.new_tensor([guesses[row]])], dim=1)
                scores[index:index + 1] = run_processors(self.chains[row], text, logits[index:index + 1])
        return scores

    def unsure(self, scores: torch.Tensor, tokens: torch.Tensor, probabilities: torch.Tensor | None) -> list[bool]:
        """Per row, whether its guess has less probability than the confidence threshold.
        probabilities: softmax(scores) when the guesses were drawn from it already."""
        if self.confidence <= 0:
            return [False] * len(tokens)
        probabilities = probabilities if probabilities is not None else torch.softmax(scores, dim=-1)
        return (probabilities.gather(1, tokens[:, None]).squeeze(1) < self.confidence).tolist()

    def learn(self, guesses: dict[int, list[int]], kept: dict[int, int], rows: Rows, active: list[int],
              call_seconds: float) -> None:
        """Each row's assistant cache keeps the guesses the row kept (of those fed to it); each row's chance
        of keeping a guess, and in greedy decoding a guess's cost, are learned for the next width."""
        if self.fed:
            keep = [min(kept[row], self.fed) if row in guesses and not rows.finished[row] else 0 for row in active]
            keep_fed(self.state, torch.tensor(keep, device=rows.buffer.device), self.fed, self.relative)
            for row, count in zip(active, keep):
                self.read[row] += count
        guessed = {row: len(guess) for row, guess in guesses.items()}
        self.width.learn(guessed, kept)
        if not self.draws:
            widest = max(guessed.values(), default=0)
            self.width.clock(self.seconds, widest, call_seconds, widest)
