"""What the generation tasks share: which decoding settings a call uses, and how its output becomes text.

Settings. Each call layers these sources, in the order of the 4.57.6 pipelines:

    1. what the caller passes (at construction or per call)         wins
    2. `config.task_specific_params[task]` (distilbart-cnn's beams,
       T5's "translate English to French: " prefix and lengths)
    3. the pipeline's defaults (`num_beams=4` for seq2seq;          beat the model's generation_config:
       `max_new_tokens=256, do_sample=True, temperature=0.7`           4.57.6 takes a value from the model
       for text generation)                                            only where the pipeline's default is
                                                                       transformers' global one, and these
                                                                       never are (so m2m100's num_beams=5
                                                                       gives way to 4, as in the pipeline)
    4. the model's `generation_config`                              read by `decoding.generate` itself

Two deliberate differences (spec, "Decisions"): a default `max_new_tokens` never overrides a
`max_length` set by anyone above. In 4.57.6 it overrode the caller's and the task_specific_params'
ones, silently, so `summarizer(text, max_length=50)` ignored the 50; the seq2seq tasks have no
default `max_new_tokens` at all, as before 4.52. And options given at construction count as the
caller's: in 4.57.6 `task_specific_params` overrode them (not the same options given per call).

Hooks. `logits_processors` (transformers' `logits_processor`, e.g. a LogitsProcessorList) and
`strategy` are callables, not values: they skip the layering and reach `decoding.generate` as given.
`trace` is refused: a pipeline answer has no place for it, and the message says how to get one.

Output. Prompts run one at a time in the caller's order, as in the pipeline (so seeded sampling
draws the same numbers), or in length-sorted batches; a batch's rows are cut back to the length the
prompt would have had alone. Text is decoded with the 4.57.6 clean-up of tokenization spaces, which
transformers 5 no longer applies to BPE tokenizers (GPT-2, BART) even when asked.
"""

import difflib
from collections.abc import Callable, Sequence
from dataclasses import fields

import torch

from core.batching import run_in_sorted_batches
from decoding import DecodingConfig
from decoding.stopping import StopCriteria

DECODING_SETTINGS = DecodingConfig.setting_names()
DEFAULTS = {f.name: f.default for f in fields(DecodingConfig)}
# The pipeline adds its sampling defaults only when sampling (transformers 5 does the same), so a
# greedy call does not carry a temperature it never uses.
SAMPLING_SETTINGS = {"temperature", "top_k", "top_p", "min_p"}
TRANSFORMERS_MAX_LENGTH = 20  # GenerationConfig's own max_length, which 4.57.6 read as "nobody set it"


# Callables `decoding.generate` takes beside the settings: they change each step, they are not values
# to merge with the model's. `logits_processor` is transformers' name (a LogitsProcessorList, which
# the 4.57.6 pipelines passed on to `generate`) for the same thing as our `logits_processors`.
HOOKS = ("logits_processors", "strategy")
HOOK_ALIASES = {"logits_processor": "logits_processors"}
TRACE_IS_NOT_AN_OPTION = (
    "trace= is not an option of the task runners: their answers keep the pipeline's shape, which has no "
    "place for a trace. To see why each token was chosen, call decoding.generate(runner.model, input_ids, "
    "trace=True) on the prompt's ids and print decoding.format_trace(output.trace, runner.tokenizer)")


def check_settings(settings: dict, task_options: tuple[str, ...] = ()) -> dict:
    """Refuse an option that is neither a decoding setting, a hook nor one of the task's, with a suggestion."""
    if "trace" in settings:
        raise TypeError(TRACE_IS_NOT_AN_OPTION)
    known = DECODING_SETTINGS + HOOKS + tuple(HOOK_ALIASES) + tuple(task_options)
    for key in settings:
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; the options are: {', '.join(sorted(known))}"
            raise TypeError(f"unknown option {key!r}{hint}")
    return settings


def split_hooks(settings: dict) -> tuple[dict, dict]:
    """(decoding settings, hooks) of checked options; the hooks go to `decoding.generate` as they are.

    `logits_processor=` is read as `logits_processors=`; None for either hook means none (and, in a
    call, clears one given at construction: see `call_settings`).
    """
    settings = dict(settings)
    for alias, name in HOOK_ALIASES.items():
        if alias in settings:
            if name in settings:
                raise ValueError(f"{alias}= (transformers' name) and {name}= are the same option; pass only one")
            settings[name] = settings.pop(alias)
    hooks = {name: settings.pop(name) for name in HOOKS if name in settings}
    if hooks.get("logits_processors") is not None:
        hooks["logits_processors"] = check_logits_processors(hooks["logits_processors"])
    return settings, given(hooks)


def given(hooks: dict) -> dict:
    """The hooks that are set (None means none)."""
    return {name: value for name, value in hooks.items() if value is not None}


def check_logits_processors(processors) -> list:
    """A list of (input_ids, scores) -> scores callables, such as transformers' LogitsProcessorList."""
    if not isinstance(processors, (list, tuple)):
        hint = "; pass it in a list: [processor]" if callable(processors) else ""
        raise TypeError(f"logits_processors must be a list of (input_ids, scores) -> scores callables, "
                        f"got {type(processors).__name__}{hint}")
    return list(processors)


def call_settings(settings: dict, constructed_hooks: dict) -> tuple[dict, dict]:
    """A call's (decoding settings, hooks): its options checked, its hooks over those given at
    construction; a hook set to None in the call clears the constructed one."""
    settings = check_settings(settings)
    cleared = {name: None for name in HOOKS + tuple(HOOK_ALIASES) if name in settings and settings[name] is None}
    settings, hooks = split_hooks({key: value for key, value in settings.items() if key not in cleared})
    cleared = {HOOK_ALIASES.get(name, name) for name in cleared}
    return settings, given({**{name: hook for name, hook in constructed_hooks.items() if name not in cleared},
                            **hooks})


def set_by_model(model) -> dict:
    """The decoding settings the model's generation_config sets to something other than transformers' default.

    A max_length of TRANSFORMERS_MAX_LENGTH is transformers' default written out (4.57.6 treated it
    as unset too).
    """
    config = getattr(model, "generation_config", None)
    values = {name: getattr(config, name, None) for name in DECODING_SETTINGS}
    unset = {**DEFAULTS, "max_length": TRANSFORMERS_MAX_LENGTH}
    return {name: value for name, value in values.items()
            if value is not None and value != DEFAULTS[name] and value != unset[name]}


def task_params(model, task: str | None) -> tuple[dict, str | None]:
    """(decoding settings, prefix) of `config.task_specific_params[task]`; ({}, None) when absent.

    Keys that are not decoding settings are dropped, as `GenerationConfig.update` would ignore them.
    """
    params = dict((getattr(model.config, "task_specific_params", None) or {}).get(task) or {})
    prefix = params.pop("prefix", None)
    return {key: value for key, value in params.items() if key in DECODING_SETTINGS}, prefix


def pipeline_settings(model, tokenizer, caller: dict, *, defaults: dict, task: str | None = None,
                      task_settings: dict | None = None) -> dict:
    """The settings to pass to `decoding.generate` (the model's generation_config fills in the rest).

    caller: what the user passed; defaults: the pipeline's defaults; task_settings: the
    task_specific_params already read (else read from `task`).
    """
    if task_settings is None:
        task_settings, _ = task_params(model, task)
    above_defaults = {**task_settings, **caller}
    chosen = {**set_by_model(model), **above_defaults}
    added = {key: value for key, value in defaults.items()
             if key not in above_defaults and not (key == "max_new_tokens" and "max_length" in chosen)}
    if not {**chosen, **added}.get("do_sample"):
        added = {key: value for key, value in added.items() if key not in SAMPLING_SETTINGS}
    settings = {**added, **above_defaults}
    # Batches are padded with the tokenizer's pad token, so finished rows should be padded with it too.
    if "pad_token_id" not in chosen and getattr(tokenizer, "pad_token_id", None) is not None:
        settings["pad_token_id"] = tokenizer.pad_token_id
    return settings


# -- running and reading the output --------------------------------------------------------------


def run_generation_batches(items: Sequence, lengths: Sequence[int], batch_size: int,
                           run_batch: Callable[[list], list]) -> list:
    """One result per item, in order. batch_size=1 runs the items in the caller's order, like the
    pipeline, so a seeded sampling call draws the same random numbers; larger batches are length-sorted."""
    if batch_size == 1:
        return [run_batch([item])[0] for item in items]
    return run_in_sorted_batches(items, lengths, batch_size, run_batch)


def draw_like_the_pipeline_dataloader() -> None:
    """Consume the one random number a pipeline draws before it runs a *list* of inputs.

    The pipelines iterate over a list with a torch DataLoader, and creating its iterator draws an
    int64 seed from the global generator (torch/utils/data/dataloader.py, `_BaseDataLoaderIter`).
    A single input skips the DataLoader. Drawing the same number keeps seeded sampling over a list
    identical to the pipeline's; it changes nothing else.
    """
    torch.empty((), dtype=torch.int64).random_()


def finished_lengths(sequences: torch.Tensor, start_length: int, stop: StopCriteria) -> torch.Tensor:
    """Where each row stopped: sequences (rows, len) -> (rows,) lengths, counted like `sequences`.

    A row stops at its first EOS id or stop string after `start_length` (the prompt, or the decoder
    start token), else at the end. What follows in the row is padding.
    """
    rows, length = sequences.shape
    ends = torch.full((rows,), length, dtype=torch.long)
    done = torch.zeros(rows, dtype=torch.bool)
    for end in range(start_length + 1, length):
        now = stop(sequences[:, :end]).cpu() & ~done
        ends[now] = end
        done |= now
        if bool(done.all()):
            break
    return ends


def split_batch_output(sequences: torch.Tensor, start_length: int, config: DecodingConfig, tokenizer,
                       left_padding: Sequence[int] | None = None) -> list[torch.Tensor]:
    """A batch's output, one (num_return_sequences, len) tensor per prompt, as if it had run alone.

    sequences: (batch, num_return_sequences, len). In a batch every row runs to the longest one;
    alone, a prompt stops when its own rows have stopped, so the extra padding is cut off here.
    left_padding: pad tokens in front of each prompt (decoder-only batches), removed too.
    """
    batch, per_prompt, length = sequences.shape
    left_padding = left_padding or [0] * batch
    if batch == 1:
        return [sequences[0, :, left_padding[0]:]]
    stop = StopCriteria(length, config.eos_ids, config.stop_strings, tokenizer)
    ends = finished_lengths(sequences.reshape(batch * per_prompt, length), start_length, stop)
    ends = ends.reshape(batch, per_prompt).max(dim=1).values
    return [sequences[index, :, left_padding[index]:int(ends[index])] for index in range(batch)]


def clean_up_tokenization(text: str) -> str:
    """The 4.57.6 `clean_up_tokenization`: no space before punctuation and English contractions."""
    return (text.replace(" .", ".").replace(" ?", "?").replace(" !", "!").replace(" ,", ",")
            .replace(" ' ", "'").replace(" n't", "n't").replace(" 'm", "'m").replace(" 's", "'s")
            .replace(" 've", "'ve").replace(" 're", "'re"))


def decode_text(tokenizer, token_ids, *, skip_special_tokens: bool = True,
                clean_up_tokenization_spaces: bool = False) -> str:
    """Token ids -> text as the 4.57.6 pipelines decoded it (the clean-up applied by us, for every tokenizer)."""
    text = tokenizer.decode(token_ids, skip_special_tokens=skip_special_tokens, clean_up_tokenization_spaces=False)
    return clean_up_tokenization(text) if clean_up_tokenization_spaces else text
