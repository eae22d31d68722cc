"""DoLa, Decoding by Contrasting Layers (Chuang et al. 2023), step for step transformers 4.55.4's
`_dola_decoding`, which 4.56 moved out of `generate()` to a hub repository. Decoder-only models.

Each step reads the next-token logits of the last layer ("mature") and of a few earlier layers
("premature": the LM head applied to that layer's hidden state, without the final norm, as 4.55.4
did). With several candidate layers, the premature layer is the one whose distribution is furthest
(Jensen-Shannon, averaged over the batch) from the last layer's. The next-token scores are then
log_softmax(mature) - log_softmax(premature) over the tokens the mature layer finds plausible
(probability at least 0.1 x the best), -inf elsewhere; then the usual processors, then greedy or
sampling. DoLa's authors recommend `repetition_penalty` >= 1.2 with it.
"""

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from decoding.config import DecodingConfig
from decoding.processors import Processor, run_processors
from decoding.strategy_call import call_processors, forward_hidden, grow_mask, prepare_call
from decoding.token_loop import append_tokens, greedy_or_sample
from decoding.warn import warn_caller


def check_dola_options(dola_layers, *, is_encoder_decoder: bool, num_beams: int = 1, num_layers: int | None = None,
                       has_output_embeddings: bool = True) -> None:
    """What DoLa needs, each a ValueError naming the option and the fix.

    4.55.4 warned and ignored dola_layers with beams, and dropped listed layers past the last one
    silently; both are errors here, so an option is never ignored.
    """
    if not (dola_layers in ("low", "high") or (isinstance(dola_layers, (list, tuple)) and dola_layers
                                               and all(isinstance(i, int) and not isinstance(i, bool)
                                                       for i in dola_layers))):
        raise ValueError(f"dola_layers must be 'low', 'high' or a non-empty list of layer indices, got {dola_layers!r}")
    if is_encoder_decoder:
        raise ValueError("dola_layers (DoLa decoding) works on decoder-only models only; drop dola_layers for an "
                         "encoder-decoder model")
    if num_beams != 1:
        raise ValueError(f"dola_layers (DoLa decoding) runs with greedy search or sampling, got num_beams={num_beams}; "
                         "pass num_beams=1")
    if not has_output_embeddings:
        raise ValueError("dola_layers needs a model with an LM head (model.get_output_embeddings()) to read early layers")
    if isinstance(dola_layers, (list, tuple)) and num_layers is not None:
        outside = [i for i in dola_layers if not 0 <= i < num_layers]
        if outside:
            raise ValueError(f"dola_layers {outside} are not layers of this model: it has layers 0..{num_layers - 1} "
                             "(0 is the embeddings); pass indices in that range, or 'low' / 'high'")


def warn_if_low_repetition_penalty(repetition_penalty: float) -> None:
    """4.55.4's advice (a warning there too): DoLa alone tends to repeat itself."""
    if repetition_penalty < 1.2:
        warn_caller(f"dola_layers with repetition_penalty={repetition_penalty} may repeat itself; DoLa's authors "
                    "recommend repetition_penalty=1.2")


def premature_layer_candidates(dola_layers, num_layers: int, tied_embeddings: bool) -> list[int]:
    """The layers DoLa may contrast with: 'low' the lower half, 'high' the upper half, every second layer.

    With tied embeddings the first layers (whose hidden state is close to the input embedding the LM
    head shares) are skipped. hidden_states[0] is the embedding output, [i] the output of layer i.
    """
    if not tied_embeddings:
        start = 0
    else:
        start = 2 if num_layers > 2 else (1 if num_layers == 2 else 0)
    if dola_layers == "low":
        if start == num_layers // 2:
            return [start]
        return list(range(start, num_layers // 2, 2)) if num_layers <= 40 else list(range(start, 20, 2))
    if dola_layers == "high":
        return list(range(num_layers // 2, num_layers, 2)) if num_layers <= 40 else list(range(num_layers - 20, num_layers, 2))
    return [i for i in dola_layers if i < num_layers]


def relative_top_filter(scores: torch.Tensor, baseline: torch.Tensor, relative_top: float = 0.1,
                        filter_value: float = -float("inf"),
                        base_filter_value: float = -1e-3) -> tuple[torch.Tensor, torch.Tensor]:
    """Both as log-probabilities, keeping only the tokens `scores` gives >= relative_top x its best.

    scores, baseline: (rows, vocab) logits. Outside the kept set: `filter_value` in scores,
    `base_filter_value` in the baseline (so their difference stays -inf there).
    """
    scores = scores.log_softmax(dim=-1)
    baseline = baseline.log_softmax(dim=-1)
    best_kept = torch.sort(scores, descending=True).values[..., 0]  # at least one token is kept
    threshold = torch.min(best_kept, scores.max(dim=-1).values + math.log(relative_top)).unsqueeze(-1)
    baseline[scores < threshold] = base_filter_value
    scores[scores < threshold] = filter_value
    return scores, baseline


def furthest_layer(candidates: list[int], premature: dict[int, torch.Tensor], final_logits: torch.Tensor) -> int:
    """The candidate layer whose distribution is furthest from the last layer's (Jensen-Shannon, batch mean).

    premature: layer -> (rows, vocab) logits; final_logits: (rows, vocab).
    """
    stacked = torch.stack([premature[i] for i in candidates], dim=0)  # (layers, rows, vocab)
    average = 0.5 * (F.softmax(final_logits, dim=-1)[None, :, :] + F.softmax(stacked, dim=-1))
    kl_mature = F.kl_div(F.log_softmax(final_logits, dim=-1)[None, :, :], average, reduction="none").mean(-1)
    kl_premature = F.kl_div(F.log_softmax(stacked, dim=-1), average, reduction="none").mean(-1)
    js = (0.5 * (kl_mature + kl_premature)).mean(-1)  # (layers,)
    return candidates[int(js.argmax().item())]


def dola_logits(candidates: list[int], premature: dict[int, torch.Tensor], final_logits: torch.Tensor) -> torch.Tensor:
    """The contrasted next-token scores (rows, vocab) (4.55.4 `_dola_select_contrast`)."""
    layer = candidates[0] if len(candidates) == 1 else furthest_layer(candidates, premature, final_logits)
    final, base = relative_top_filter(final_logits, premature[layer])
    return final - base


def layer_logits(lm_head, hidden: Sequence[torch.Tensor], layers: list[int]) -> dict[int, torch.Tensor]:
    """The LM head on each layer's last-position hidden state: layer -> (rows, vocab) float32."""
    return {layer: lm_head(hidden[layer][:, -1, :]).float() for layer in layers}


@torch.inference_mode()
def dola_generate(model, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, *, dola_layers,
                  config: DecodingConfig | None = None, tokenizer=None, logits_processors: Sequence[Processor] = (),
                  **settings) -> torch.Tensor:
    """DoLa like 4.55.4 `model.generate(input_ids, dola_layers=..., **settings)`: greedy, or sampling with
    do_sample=True (the same torch.multinomial draws). input_ids: (batch, seq_len), left-padded.
    Returns the sequences (batch, len)."""
    text_config = model.config.get_text_config()
    num_layers = text_config.num_hidden_layers
    lm_head = model.get_output_embeddings()
    call = prepare_call(model, input_ids, attention_mask, settings=settings, config=config, tokenizer=tokenizer,
                        logits_processors=logits_processors)
    check_dola_options(dola_layers, is_encoder_decoder=bool(model.config.is_encoder_decoder),
                       num_beams=call.config.num_beams, num_layers=num_layers, has_output_embeddings=lm_head is not None)
    warn_if_low_repetition_penalty(call.config.repetition_penalty)
    candidates = premature_layer_candidates(dola_layers, num_layers, bool(getattr(text_config, "tie_word_embeddings", False)))
    choose = greedy_or_sample(call.config.do_sample)
    state, sequences = call.state, call.sequences
    pad_token_id = call.config.effective_pad_token_id
    unfinished = torch.ones(sequences.shape[0], dtype=torch.long, device=sequences.device)
    mask, positions, tokens, processors = state.attention_mask, state.next_positions, sequences, None
    while True:
        logits, hidden = forward_hidden(model, tokens, state, attention_mask=mask, positions=positions)
        if processors is None:
            processors = call_processors(call, logits.shape[-1])
        scores = run_processors(processors, sequences, dola_logits(candidates, layer_logits(lm_head, hidden, candidates),
                                                                    logits))
        next_tokens = choose(scores)
        sequences, unfinished, next_tokens = append_tokens(sequences, next_tokens, unfinished, call.stop, pad_token_id)
        if unfinished.max() == 0:
            return sequences
        tokens, mask = next_tokens[:, None], grow_mask(mask)
        positions = positions[:, -1:] + 1
