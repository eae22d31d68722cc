"""The two 4.57.6 processors that read the model's input: encoder_repetition_penalty and
encoder_no_repeat_ngram_size.

The "encoder input" is what generate() was given: the encoder's input ids for an encoder-decoder
model, the prompt for a decoder-only one (4.57.6 passes `inputs_tensor` for both). It has one row per
prompt; the scores have `expand` rows per prompt (beams or samples), row r belonging to prompt
r // expand, as the loop lays them out.
"""


import torch

from decoding.bans import forbid


def rows_of(encoder_input_ids: torch.Tensor, rows: int) -> torch.Tensor:
    """(rows, len): each prompt's encoder input repeated for its beams or samples."""
    return encoder_input_ids.repeat_interleave(rows // encoder_input_ids.shape[0], dim=0)


def apply_encoder_repetition_penalty(scores: torch.Tensor, encoder_input_ids: torch.Tensor,
                                     penalty: float) -> torch.Tensor:
    """Make the input's tokens more likely (penalty > 1) or less (< 1): EncoderRepetitionPenaltyLogitsProcessor.

    It divides by 1 / penalty where the repetition penalty divides by penalty, hence the opposite
    effect. Every row gets its own prompt's ids, as in transformers 5; 4.57.6 gathered with the
    un-repeated input, so with several beams or samples per prompt it changed only the first rows
    (with the wrong prompt's ids). With one row per prompt all three are the same.
    """
    ids = rows_of(encoder_input_ids, scores.shape[0])
    inverse = 1 / penalty
    seen = torch.gather(scores, 1, ids)
    seen = torch.where(seen < 0, seen * inverse, seen / inverse)
    return scores.scatter(1, ids, seen)


def encoder_ngrams(encoder_input_ids: torch.Tensor, ngram_size: int) -> list[dict[tuple, list[int]]]:
    """Per prompt: each (n-1)-token prefix of the input -> the tokens that complete it to an input n-gram."""
    tables = []
    for row in encoder_input_ids.tolist():
        table: dict[tuple, list[int]] = {}
        for ngram in zip(*[row[i:] for i in range(ngram_size)]):
            table[tuple(ngram[:-1])] = table.get(tuple(ngram[:-1]), []) + [ngram[-1]]
        tables.append(table)
    return tables


def apply_encoder_no_repeat_ngram(scores: torch.Tensor, input_ids: torch.Tensor, tables: list[dict],
                                  ngram_size: int) -> torch.Tensor:
    """Ban the tokens that would write an n-gram of the input (EncoderNoRepeatNGramLogitsProcessor)."""
    return forbid(scores, encoder_ngram_bans(input_ids, scores, tables, ngram_size))


def encoder_ngram_bans(input_ids: torch.Tensor, scores: torch.Tensor, tables: list[dict],
                       ngram_size: int) -> list[torch.Tensor]:
    """The bans of apply_encoder_no_repeat_ngram, as a (rows, vocab) mask (none when nothing is banned).

    tables: `encoder_ngrams` of the input. The last n-1 generated tokens are looked up in their
    prompt's table; a sequence shorter than n-1 tokens completes no n-gram.
    """
    length = input_ids.shape[-1]
    if length + 1 < ngram_size:
        return []
    expand = scores.shape[0] // len(tables)
    prefixes = input_ids[:, length + 1 - ngram_size:].tolist()
    banned = [tables[row // expand].get(tuple(prefix), []) for row, prefix in enumerate(prefixes)]
    if not any(banned):
        return []
    mask = torch.zeros(scores.shape, dtype=torch.bool, device=scores.device)
    for row, tokens in enumerate(banned):
        mask[row, tokens] = True
    return [mask]
