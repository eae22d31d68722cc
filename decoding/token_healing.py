"""Token healing as transformers 4.57.6's `generate(token_healing=True, tokenizer=...)` does it
(`GenerationMixin.heal_tokens`), written out so nopipe calls no GenerationMixin method.

A prompt cut mid-word ("The url is htt") ends in a token the model rarely saw in that place. Healing
removes the prompt's last token and lets the model write it again, biased towards the tokens whose
text starts with the removed text ("http", "https", ...). 4.57.6 does it like this, and so does
`heal_prompt`, step for step:

1. decode the prompts without special tokens, strip leading and trailing whitespace, and tokenize
   them again as one padded batch (the tokenizer's own padding side and special tokens);
2. replace every BOS token by the pad token;
3. per row (not for an all-pad row): find the vocabulary tokens that start with the last token's
   text; if there are others than the last token itself, drop the last token and write one token
   (greedy unless the model's generation_config samples) with a sequence_bias of +10 on each of them
   and +11 on the dropped token. It is a bias, not a ban: another token can still win.

generate() then continues from the healed prompts (see heal_prompt for what differs from the input).

The quirks are 4.57.6's and kept on purpose: see `tail_texts`, `extensions` and `heal_row`.
"""

import bisect

import torch

CANDIDATE_BIAS = 10.0
DROPPED_TOKEN_BONUS = 1.0  # 4.57.6 favours the original token a little, to limit 'http' -> 'https'


def heal_prompt(model, input_ids: torch.Tensor, tokenizer) -> torch.Tensor:
    """The healed prompts (batch, new_len): `input_ids` decoded, re-tokenized and each last token re-chosen.

    The result can be shorter or longer than `input_ids` (stripped spaces, new padding) and holds pad
    tokens where the tokenizer padded and where BOS tokens were. Prompts that are all empty once stripped
    give a (batch, 0) tensor, as in 4.57.6 (generate() then refuses it).
    """
    check_can_heal(model, tokenizer)
    healed = retokenized(input_ids, tokenizer)
    if healed.numel() == 0:
        return healed
    vocabulary = SortedVocabulary(tokenizer.get_vocab())
    tail_ids = healed[:, -1].tolist()
    for row, (tail_id, tail_text) in enumerate(zip(tail_ids, tail_texts(tail_ids, tokenizer))):
        if bool((healed[row] == tokenizer.pad_token_id).all()):
            continue  # an empty prompt in a batch
        bias = healing_bias(tail_id, tail_text, vocabulary, tokenizer)
        if bias is not None and healed.shape[1] > 1:  # a one-token prompt leaves nothing to continue from
            healed[row] = heal_row(model, healed[row], bias, tokenizer)
    return healed


def check_can_heal(model, tokenizer) -> None:
    """Refuse what 4.57.6 refuses or breaks on, with the fix in the message."""
    if tokenizer is None:
        raise ValueError("token healing needs the model's tokenizer to decode and re-tokenize the prompt; "
                         "pass tokenizer=...")
    if model.config.is_encoder_decoder:
        # 4.57.6 would heal the decoder start ids and feed them to the encoder (or fail without a BOS token).
        raise ValueError("token healing is for decoder-only models: an encoder-decoder model's prompt is "
                         "its encoder input, which generation does not extend")
    for name in ("bos_token", "pad_token"):
        if getattr(tokenizer, name) is None:
            raise ValueError(f"token healing needs tokenizer.{name} (4.57.6 puts the pad token where BOS tokens "
                             f"were and pads the re-tokenized batch); set tokenizer.{name}, e.g. to the EOS token")


def retokenized(input_ids: torch.Tensor, tokenizer) -> torch.Tensor:
    """The prompts decoded, stripped and tokenized again as one padded batch, with BOS replaced by pad.

    4.57.6 strips so that healing does not depend on whitespace at either end of the prompt.
    """
    prompts = [text.strip() for text in tokenizer.batch_decode(input_ids, skip_special_tokens=True)]
    ids = tokenizer(prompts, return_tensors="pt", padding=True).input_ids.to(input_ids.device)
    return torch.where(ids == tokenizer.bos_token_id, tokenizer.pad_token_id, ids)


def tail_texts(tail_ids: list[int], tokenizer) -> list[str]:
    """Each last token's text, spaces written as the vocabulary writes them, for the prefix search.

    4.57.6 takes the first character of the token `convert_tokens_to_ids(" ")` names. When " " is not in
    the vocabulary (GPT-2's, Llama's) that is the unknown token: ' the' is searched as '<the' ('<' of
    '<|endoftext|>'), which no token starts with, so a last token with a space is in practice never healed.
    """
    texts = [tokenizer.decode(token) for token in tail_ids]
    space_id = tokenizer.convert_tokens_to_ids(" ")
    if space_id is None:
        return texts
    space = tokenizer.convert_ids_to_tokens(space_id)[0]
    return [text.replace(" ", space) for text in texts]


class SortedVocabulary:
    """The vocabulary's token strings in code-point order: the tokens sharing a prefix are neighbours.

    Gives what 4.57.6's `ExtensionsTrie` gives, without a trie (built once per call, as 4.57.6 builds its trie).
    """

    def __init__(self, vocab: dict[str, int]):
        self.tokens = sorted(token for token in vocab if token)  # the trie drops the empty string

    def starting_with(self, prefix: str) -> list[str]:
        start = bisect.bisect_left(self.tokens, prefix)
        end = start
        while end < len(self.tokens) and self.tokens[end].startswith(prefix):
            end += 1
        return self.tokens[start:end]

    def extensions(self, prefix: str) -> list[str]:
        """`ExtensionsTrie.extensions(prefix)`: the tokens that start with `prefix`.

        With 4.57.6's quirk: when no token starts with the whole prefix, the trie stops at the longest
        part of it that some token starts with, and answers `prefix` + what follows that part in each
        such token (strings that are mostly not tokens; `convert_tokens_to_ids` makes them the unknown token).
        """
        known = prefix
        while known and not self.starting_with(known):
            known = known[:-1]
        return [prefix + token[len(known):] for token in self.starting_with(known)]


def healing_bias(tail_id: int, tail_text: str, vocabulary: SortedVocabulary, tokenizer) -> dict | None:
    """The sequence_bias that re-chooses the last token, or None when there is nothing to choose from."""
    candidates = {tokenizer.convert_tokens_to_ids(token) for token in vocabulary.extensions(tail_text)}
    if len(candidates) == 1:
        return None
    if tail_id not in candidates:
        # 4.57.6 fails here with a KeyError (e.g. a SentencePiece token '▁word' decodes to 'word').
        raise ValueError(f"cannot heal: the prompt's last token {tail_id} ({tail_text!r}) is not among the "
                         f"{len(candidates)} tokens that start with its text")
    bias = {(candidate,): CANDIDATE_BIAS for candidate in candidates}
    bias[(tail_id,)] += DROPPED_TOKEN_BONUS
    return bias


def heal_row(model, row: torch.Tensor, bias: dict, tokenizer) -> torch.Tensor:
    """The row with its last token re-chosen: one generation step from the rest, under `bias`.

    As 4.57.6's inner `generate(max_new_tokens=1, pad_token_id=..., sequence_bias=...)`: no attention
    mask (inferred from the pad token, so pads count when pad is EOS), the model's generation_config
    for everything else. A row whose only real token is the last one is continued from BOS instead of
    from its padding.
    """
    from decoding.generation import generate  # here, not above: generation.py may call heal_prompt

    trimmed = row[:-1].clone()
    if int((row != tokenizer.pad_token_id).sum()) == 1:
        trimmed[-1] = tokenizer.bos_token_id
    out = generate(model, trimmed[None], max_new_tokens=1, pad_token_id=tokenizer.pad_token_id, sequence_bias=bias)
    return out.sequences[0]
