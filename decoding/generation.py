"""`generate()`: our replacement for `model.generate()`, built from the pieces of this package.

    settings  -> DecodingConfig.from_model   (defaults from model.generation_config)
    prompt    -> model_step.start + prefill  (encoder once, cache, first logits)
    each step -> processors -> strategy (greedy / sample / yours) or beam_search
    stop      -> StopCriteria                 (max_length, EOS ids, stop strings)

The returned `sequences` are shaped like `model.generate()`'s: decoder-only = prompt + new tokens,
encoder-decoder = decoder start token + new tokens, finished rows padded with the pad token.
"""

import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from functools import partial

import torch

from decoding.config import DecodingConfig
from decoding.guidance import guidance_processor
from decoding.lengths import Lengths, check_output_fits, check_prompt_fits, resolve_lengths
from decoding.memory import check_fits_in_memory
from decoding.model_step import ModelState, infer_attention_mask, prefill, start
from decoding.processors import Processor, build_processors
from decoding.recording import recorded_outputs, with_recording
from decoding.search import Found, MovedStrategy, Prompt, default_search
from decoding.shared_cross_attention import sharing_cross_attention
from decoding.speculative import Acceptance, check_assistant, check_prompt_lookup
from decoding.stopping import StopCriteria, check_stopping_criteria
from decoding.time_limit import with_time_limit
from decoding.token_healing import heal_prompt
from decoding.token_loop import Strategy
from decoding.trace import Tracer, TraceStep, make_tracer
from decoding.warn import warn_caller


@dataclass
class GenerationOutput:
    """sequences: (batch * num_return_sequences, len) like `model.generate()`.

    sequences_scores: beam search only, (batch * num_return_sequences,) the length-normalised
    log-probability each returned beam was ranked by (transformers' `sequences_scores`).
    trace: with trace=True, one TraceStep per generated position.
    scores, logits: with output_scores / output_logits, one (rows, vocab) tensor per step: the
    processed scores and the raw logits (transformers' `scores` and `logits`).
    """

    sequences: torch.Tensor
    sequences_scores: torch.Tensor | None = None
    trace: list[TraceStep] | None = None
    scores: tuple[torch.Tensor, ...] | None = None
    logits: tuple[torch.Tensor, ...] | None = None
    speculation: Acceptance | None = None  # with prompt_lookup_num_tokens: guesses proposed and kept


@dataclass
class Prepared:
    """A call after the prefill: everything a decoding loop needs."""

    config: DecodingConfig
    lengths: Lengths
    sequences: torch.Tensor  # (rows, start_len)
    state: ModelState
    logits: torch.Tensor  # (rows, vocab) for the first new token
    processors: list[Processor]
    stop: StopCriteria
    tracer: Tracer | None
    input_ids: torch.Tensor | None = None  # (batch, seq_len) the call's input: a prompt, or what the encoder read
    attention_mask: torch.Tensor | None = None  # its mask (decoder-only: given or inferred)
    # row -> that row's own processors (generation.one_row_processors); None when a processor couples the
    # rows (the caller's own, prefix_allowed_tokens_fn's batch ids, guidance's second pass)
    row_processors: Callable[[int], list[Processor]] | None = None


def check_inputs(model, input_ids, attention_mask) -> None:
    """Shapes and types the loop relies on, with the fix in the message."""
    if not isinstance(input_ids, torch.Tensor):
        raise TypeError(f"input_ids must be a torch.LongTensor of shape (batch, seq_len), got {type(input_ids).__name__}; "
                        "use tokenizer(..., return_tensors='pt')")
    if input_ids.dim() != 2:
        raise ValueError(f"input_ids must be 2-D (batch, seq_len), got shape {tuple(input_ids.shape)}; "
                         "for a single prompt use input_ids[None]")
    if input_ids.dtype not in (torch.long, torch.int, torch.int32):
        raise TypeError(f"input_ids must hold integer token ids, got dtype {input_ids.dtype}")
    if input_ids.shape[1] == 0:
        raise ValueError("input_ids is empty (seq_len 0); pass at least one prompt token")
    if attention_mask is not None and tuple(attention_mask.shape) != tuple(input_ids.shape):
        raise ValueError(f"attention_mask must have the shape of input_ids {tuple(input_ids.shape)}, "
                         f"got {tuple(attention_mask.shape)}")
    if not hasattr(model, "config") or not callable(model):
        raise TypeError("model must be a transformers model with a language-modelling head, e.g. AutoModelForCausalLM")


def resolve_config(model, config: DecodingConfig | None, settings: dict) -> DecodingConfig:
    """A ready config (with the keyword settings on top), or one read from the model and the settings."""
    if config is None:
        return DecodingConfig.from_model(model, **settings)
    if not isinstance(config, DecodingConfig):
        raise TypeError(f"config must be a decoding.DecodingConfig, got {type(config).__name__}; "
                        "pass keyword settings instead, e.g. generate(model, ids, max_new_tokens=20)")
    return config.with_settings(model, **settings) if settings else config


def prepare(model, input_ids, attention_mask, *, tokenizer, logits_processors: Sequence[Processor],
            strategy: Strategy | None, trace, settings: dict, scope: ExitStack,
            config: DecodingConfig | None = None, stopping_criteria: Sequence = ()) -> Prepared:
    """Resolve settings, check everything, run the encoder and the prefill, build processors and stops.

    scope: holds the model's switch to shared cross-attention until the call ends.
    """
    started = time.time()  # max_time counts from here, as 4.57.6's MaxTimeCriteria
    check_inputs(model, input_ids, attention_mask)
    config = resolve_config(model, config, settings)
    if strategy is not None and not callable(strategy):
        raise TypeError(f"strategy must be a callable (scores) -> next token ids, got {strategy!r}")
    if strategy is not None and config.num_beams > 1:
        raise ValueError("strategy= replaces greedy/sampling token choice and cannot be combined with "
                         f"num_beams={config.num_beams}; pass num_beams=1")
    for processor in logits_processors:
        if not callable(processor):
            raise TypeError(f"each logits processor must be a callable (input_ids, scores) -> scores, got {processor!r}")
    if config.stop_strings is not None and tokenizer is None:
        raise ValueError("stop_strings needs the model's tokenizer to read the generated text; "
                         "pass tokenizer=... to generate()")

    is_encoder_decoder = bool(model.config.is_encoder_decoder)
    device = model.device
    input_ids = input_ids.to(device)
    if attention_mask is not None:
        attention_mask = attention_mask.to(device)
    pad_token_id = config.effective_pad_token_id
    if not is_encoder_decoder:
        if attention_mask is None:
            attention_mask = infer_attention_mask(input_ids, pad_token_id, config.eos_ids)
        if input_ids.shape[0] > 1 and bool((attention_mask[:, -1] == 0).any()):
            warn_caller("right padding found in a decoder-only batch: the new tokens would follow pad tokens; "
                        "pad on the left (tokenizer.padding_side = 'left')")

    check_prompt_fits(model, input_ids.shape[1])
    start_length = 1 if is_encoder_decoder else input_ids.shape[1]
    lengths = resolve_lengths(config, start_length, model.config)
    check_output_fits(model, lengths)

    expand = max(config.num_beams, config.num_return_sequences)
    check_fits_in_memory(model, batch=input_ids.shape[0], expand=expand, max_length=lengths.max_length,
                         expanded_by="num_beams" if config.num_beams > 1 else "num_return_sequences")
    decoder_start = config.decoder_start_token_id if config.decoder_start_token_id is not None else config.bos_token_id
    # Guesses feed several positions per call, which the shared kernel does not take (it reads one per row).
    guessing = config.prompt_lookup_num_tokens is not None or config.assistant_model is not None
    shared = scope.enter_context(sharing_cross_attention(model, config.share_cross_attention and expand > 1
                                                         and not guessing))
    sequences, state = start(model, input_ids, attention_mask, expand=expand, decoder_start_token_id=decoder_start,
                             max_length=lengths.max_length, shared_cross_attention=shared)
    logits = prefill(model, sequences, state)

    skip_before = None
    if not is_encoder_decoder and state.attention_mask is not None:
        # The repetition penalty ignores each row's left padding (its first real token is the mask's first 1).
        skip_before = (state.attention_mask != 0).int().argmax(dim=1)
    chain = partial(build_processors, config, prompt_length=start_length, max_length=lengths.max_length,
                    min_length=lengths.min_length, vocab_size=logits.shape[-1], device=device)
    guidance = guidance_processor(model, config)
    processors = chain(skip_before=skip_before, user_processors=list(logits_processors), encoder_input_ids=input_ids,
                       guidance=guidance)
    coupled = bool(logits_processors) or guidance is not None or config.prefix_allowed_tokens_fn is not None
    row_processors = None if coupled else partial(one_row_processors, chain, skip_before, input_ids,
                                                  expand=sequences.shape[0] // input_ids.shape[0])
    stop = StopCriteria(lengths.max_length, config.eos_ids, config.stop_strings, tokenizer, device=device,
                        extra=check_stopping_criteria(stopping_criteria))
    stop = with_time_limit(stop, config.max_time, started)
    return Prepared(config, lengths, sequences, state, logits, processors, stop,
                    with_recording(make_tracer(trace), config), input_ids, attention_mask, row_processors)


def one_row_processors(chain, skip_before: torch.Tensor | None, input_ids: torch.Tensor, row: int, *,
                       expand: int) -> list[Processor]:
    """The call's processors for row `row` alone, fed that row's sequence (1, len): what speculative
    decoding runs when its rows reach different lengths. chain: build_processors with the call's settings."""
    prompt = row // expand
    return chain(skip_before=None if skip_before is None else skip_before[row:row + 1],
                 encoder_input_ids=input_ids[prompt:prompt + 1])


@torch.inference_mode()
def generate(model, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, *, tokenizer=None,
             logits_processors: Sequence[Processor] = (), strategy: Strategy | None = None, search=None,
             stopping_criteria: Sequence = (), trace=False, config: DecodingConfig | None = None,
             **settings) -> GenerationOutput:
    """Generate from `input_ids` (batch, seq_len) like `model.generate(input_ids, attention_mask, **settings)`.

    settings: any DecodingConfig field (max_new_tokens, num_beams, do_sample, top_p, ...); unset
    ones come from `model.generation_config`. config: a ready DecodingConfig (e.g. a task runner's
    resolved settings) instead of, or under, the keyword settings. tokenizer: for stop_strings only.
    logits_processors: extra (input_ids, scores) -> scores callables, run after the built-in ones.
    strategy: a (scores) -> next_tokens callable replacing greedy/sampling (not with beams).
    stopping_criteria: extra (input_ids, scores) -> (rows,) bool callables, as transformers' StoppingCriteria;
    a row ends when one says so (called with scores=None; greedy decoding and sampling, not beams).
    search: a callable (model, prepared call) -> decoding.search.Found that owns the whole step loop
    (decoding/search.py says what it gets); by default the built-in one the settings ask for
    (decoding/moved_searches.py holds contrastive search, DoLa, diverse and constrained beam search).
    trace: True (or a number of candidates) records why each token was chosen.
    Decoder-only batches must be left-padded, with their attention_mask.
    """
    config = resolve_config(model, config, settings)
    if config.token_healing:
        input_ids, attention_mask = healed_prompt(model, input_ids, attention_mask, tokenizer, config)
    moved = moved_strategy(config)
    check_search(search, strategy, config, moved)
    check_speculation(config, model, moved, strategy)
    search = search if search is not None else chosen_search(config, strategy, moved)
    check_stopping_criteria_loop(stopping_criteria, config, search)
    if isinstance(search, MovedStrategy):
        check_moved_strategy_hooks(search, config, strategy=strategy, trace=trace)
    if getattr(search, "own_prefill", False):
        return output_of(search(model, Prompt(input_ids, attention_mask, config, tokenizer, logits_processors)), None)
    with ExitStack() as scope:
        prepared = prepare(model, input_ids, attention_mask, tokenizer=tokenizer, logits_processors=logits_processors,
                           strategy=strategy, trace=trace, settings={}, scope=scope, config=config,
                           stopping_criteria=stopping_criteria)
        return output_of(search(model, prepared), prepared.tracer)


def chosen_search(config: DecodingConfig, strategy, moved):
    """The built-in search the settings ask for: a moved strategy's (4.x keywords), else greedy, sampling,
    beams or speculation. Imported here: the moved strategies build on this module."""
    if moved.name is not None:
        from decoding.moved_searches import moved_search

        return moved_search(moved)
    return default_search(config, strategy)


def check_stopping_criteria_loop(stopping_criteria, config: DecodingConfig, search) -> None:
    """The caller's stopping criteria end rows of nopipe's greedy and sampling loops; beam searches rank
    finished hypotheses their own way, so a criterion there is refused rather than half applied."""
    if not stopping_criteria:
        return
    moved = isinstance(search, MovedStrategy)
    if config.num_beams > 1 or moved:
        loop = search.name.replace("_", " ") + " search" if moved else f"num_beams={config.num_beams}"
        raise ValueError(f"stopping_criteria= ends rows of greedy decoding and sampling; it cannot be used with "
                         f"{loop}: drop stopping_criteria or decode without beams")


def healed_prompt(model, input_ids, attention_mask, tokenizer, config: DecodingConfig):
    """token_healing: the prompts with their last tokens re-chosen (decoding/token_healing.py) and the mask
    to continue with. As 4.57.6, the mask from before healing (given or inferred) goes on; when healing
    changed the length (stripped spaces, new padding), 4.57.6 kept the old mask of the other length
    (every position shifted), nopipe infers one from the healed ids."""
    check_inputs(model, input_ids, attention_mask)
    if attention_mask is None and not model.config.is_encoder_decoder:
        attention_mask = infer_attention_mask(input_ids, config.effective_pad_token_id, config.eos_ids)
    healed = heal_prompt(model, input_ids.to(model.device), tokenizer)
    if healed.shape != input_ids.shape:
        attention_mask = None
    return healed, attention_mask


def check_speculation(config: DecodingConfig, model, moved, strategy) -> None:
    """A source of guesses (assistant_model, prompt_lookup_num_tokens): its own checks, and no other loop beside it."""
    if config.assistant_model is not None:
        check_assistant(config, model)
        refuse_another_loop("assistant_model", moved, strategy)
    if config.prompt_lookup_num_tokens is not None:
        check_prompt_lookup(config)
        refuse_another_loop("prompt_lookup_num_tokens", moved, strategy)


def refuse_another_loop(name: str, moved, strategy) -> None:
    """Speculative decoding speeds up nopipe's own greedy loop, not a strategy= or a moved strategy's loop."""
    if moved.name is not None or strategy is not None:
        other = "strategy=" if strategy is not None else moved.name.replace("_", " ") + " search"
        raise ValueError(f"{name} speeds up nopipe's own greedy loop; it cannot be combined with {other}")


def check_search(search, strategy, config: DecodingConfig, moved) -> None:
    """A search replaces the loop: it cannot be combined with another choice of loop."""
    if search is None:
        return
    if not callable(search):
        raise TypeError(f"search must be a callable (model, call) -> decoding.search.Found, got {search!r}")
    others = [name for name, value in (("strategy=", strategy),
                                       ("prompt_lookup_num_tokens", config.prompt_lookup_num_tokens),
                                       ("assistant_model", config.assistant_model)) if value is not None]
    if others or moved.name is not None:
        raise ValueError(f"search= runs its own loop; drop {others[0] if others else 'the strategy options'} "
                         "or the search")


def moved_strategy(config: DecodingConfig):
    """The strategy transformers 4.56 moved to the hub that these settings ask for (its .name is None
    for greedy, sampling and beam search). Imported here: those strategies build on this module."""
    from decoding.strategy_options import STRATEGY_KEYWORDS, split_strategy_options

    settings = {name: getattr(config, name) for name in STRATEGY_KEYWORDS}
    defaults = {name: getattr(config, name) for name in ("num_beams", "do_sample", "top_k", "num_return_sequences")}
    return split_strategy_options(settings, defaults=defaults)[0]


def check_moved_strategy_hooks(moved, config: DecodingConfig, *, strategy, trace) -> None:
    """The moved strategies run their own loops, without the token loop's hooks: refuse a hook rather
    than ignore it."""
    asked = [name for name, value in (("strategy=", strategy), ("trace=", trace), ("output_scores", config.output_scores),
                                      ("output_logits", config.output_logits)) if value]
    if asked:
        raise ValueError(f"{', '.join(asked)} cannot be used with {moved.name.replace('_', ' ')} search "
                         f"({', '.join(moved.options)}); drop {asked[0]} or the strategy's options")


def output_of(found: Found, tracer: Tracer | None) -> GenerationOutput:
    """What generate() returns for a search's result (and the trace the call recorded)."""
    if not isinstance(found, Found):
        raise TypeError(f"a search must return decoding.search.Found(sequences, ...), got {type(found).__name__}")
    return GenerationOutput(found.sequences, found.sequences_scores, tracer.steps if tracer else None,
                            **recorded_outputs(tracer), speculation=found.speculation)
