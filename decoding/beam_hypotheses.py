"""The finished hypotheses of transformers 4.55.4's `BeamSearchScorer` (beam_search.py), which diverse and
constrained beam search still used in that release (plain beam search had moved to tensors).

Written as 4.55.4 wrote it, in Python floats, because which hypothesis is kept on a tie or on the last
float bit decides the tokens: `FinishedHypotheses` is `BeamHypotheses`, `finalize` is
`BeamSearchScorer.finalize` (the best hypotheses of all groups of a prompt, padded, an EOS after the
shorter ones where it fits).
"""

import torch


class FinishedHypotheses:
    """The best `num_beams` finished hypotheses of one prompt (or one group of its beams)."""

    def __init__(self, num_beams: int, length_penalty: float, early_stopping, max_length: int):
        self.num_beams = num_beams
        self.length_penalty = length_penalty
        self.early_stopping = early_stopping
        self.max_length = max_length
        self.beams: list[tuple[float, torch.Tensor]] = []
        self.worst_score = 1e9

    def __len__(self) -> int:
        return len(self.beams)

    def add(self, tokens: torch.Tensor, sum_logprobs: float, generated_len: int) -> None:
        """Keep `tokens` (seq_len,) if it is among the best; scored sum_logprobs / generated_len ** length_penalty."""
        score = sum_logprobs / (generated_len ** self.length_penalty)
        if len(self) < self.num_beams or score > self.worst_score:
            self.beams.append((score, tokens))
            if len(self) > self.num_beams:
                ranked = sorted((s, index) for index, (s, _) in enumerate(self.beams))
                del self.beams[ranked[0][1]]
                self.worst_score = ranked[1][0]
            else:
                self.worst_score = min(score, self.worst_score)

    def is_done(self, best_sum_logprobs: float, cur_len: int, prompt_len: int) -> bool:
        """Whether no running beam can still beat the worst kept hypothesis (`early_stopping` says how to guess)."""
        if len(self) < self.num_beams:
            return False
        if self.early_stopping is True:
            return True
        if self.early_stopping is False:
            return self.worst_score >= best_sum_logprobs / (cur_len - prompt_len) ** self.length_penalty
        if self.length_penalty > 0.0:
            best = best_sum_logprobs / (self.max_length - prompt_len) ** self.length_penalty
        else:
            best = best_sum_logprobs / (cur_len - prompt_len) ** self.length_penalty
        return self.worst_score >= best


def finalize(hypotheses: list[list[FinishedHypotheses]], num_return_sequences: int, max_length: int,
             pad_token_id: int | None, eos_ids: list[int], like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The best `num_return_sequences` hypotheses per prompt over all its groups, best first.

    hypotheses: [prompt][group]. Returns sequences (batch * num_return_sequences, len), padded with
    `pad_token_id` when the lengths differ and with the first EOS id right after a shorter hypothesis
    (as 4.55.4 did), and their scores (batch * num_return_sequences,) float32.
    """
    best, scores = [], []
    for groups in hypotheses:
        ranked = sorted((beam for group in groups for beam in group.beams), key=lambda beam: beam[0])
        for _ in range(num_return_sequences):
            score, tokens = ranked.pop()
            best.append(tokens)
            scores.append(score)
    lengths = [len(tokens) for tokens in best]
    out_len = min(max(lengths) + 1, max_length)
    sequences = like.new_zeros((len(best), out_len))
    if min(lengths) != max(lengths):
        if pad_token_id is None:
            raise ValueError("hypotheses of different lengths need a pad_token_id; pass pad_token_id=...")
        sequences.fill_(pad_token_id)
    for row, tokens in enumerate(best):
        sequences[row, :len(tokens)] = tokens
        if len(tokens) < out_len:
            sequences[row, len(tokens)] = eos_ids[0]
    return sequences, torch.tensor(scores, dtype=torch.float32, device=like.device)
