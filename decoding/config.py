"""Decoding settings: one flat dataclass, its defaults read from `model.generation_config`, checked once.

Priority is the one `model.generate()` uses: caller keyword > the model's `generation_config` >
transformers' effective defaults. In transformers 5 a `GenerationConfig` leaves most fields at
None and fills them at call time from `GenerationConfig._get_default_generation_params()`; those
values are the defaults of the fields below, so reading a field here gives what `generate()` uses.

Lengths that depend on the prompt (`max_new_tokens` -> `max_length`) are resolved per call by
`decoding/lengths.py`, since the prompt is not known when the settings are read.
"""

import difflib
import math
from dataclasses import dataclass, field, fields

from decoding.option_checks import MAX_SCALE, MAX_TOKENS, check_processor_options

# The layers a setting can come from, strongest last in `from_layers`; the task runners add theirs
# (construction, task_specific_params, pipeline default) between these two.
TRANSFORMERS_DEFAULT = "transformers default"
GENERATION_CONFIG = "generation_config"
CALLER = "caller"

DEFAULT_NEW_TOKENS = 20  # transformers' max_length=20 default, counted as new tokens when nobody set a length

# Bounds on numeric settings, checked before any arithmetic so that a huge value is a clear error, not a
# minute of big-integer work, a raw torch error or a silently wrong answer.
MAX_ROWS = 4096  # num_beams, num_return_sequences: each one is a row of the model's cache
MAX_LENGTH_PENALTY = 10.0  # length ** 10 still fits float32 for lengths up to ~6,000 tokens
MIN_SCALE = 1 / MAX_SCALE  # temperature, penalties in [1e-30, 1e30]: scores divided by them stay finite float32
FLOAT32_MAX = 3.4028234663852886e38  # the largest float32: an int above it has no float setting's meaning


@dataclass(frozen=True)
class DecodingConfig:
    """Every knob of our generation loop, under the names `model.generate()` uses.

    Lengths count the sequence the loop grows: prompt + new tokens for decoder-only models,
    decoder start token + new tokens for encoder-decoder models (as in transformers).
    `max_length=None` means "nobody chose": 20 new tokens, capped at `max_position_embeddings`.
    """

    # how long
    max_length: int | None = None
    max_new_tokens: int | None = None
    min_length: int = 0
    min_new_tokens: int | None = None
    # which strategy
    do_sample: bool = False
    num_beams: int = 1
    num_return_sequences: int = 1
    # the strategies transformers 4.56 moved to hub repositories (decoding/strategy_options.py picks one)
    penalty_alpha: float | None = None  # contrastive search, with top_k > 1
    dola_layers: str | list | None = None  # DoLa: "low", "high" or layer indices
    num_beam_groups: int = 1  # diverse beam search, with diversity_penalty
    diversity_penalty: float = 0.0
    force_words_ids: list | None = None  # constrained beam search
    constraints: list | None = field(default=None, compare=False)
    # speculative decoding: guess this many tokens from the text so far, keep those greedy agrees with
    prompt_lookup_num_tokens: int | None = None
    # ... or from a smaller model with the same vocabulary, num_assistant_tokens at a time (adapting),
    # stopping early at a guess the assistant gives less than assistant_confidence_threshold (4.x defaults)
    assistant_model: object = field(default=None, compare=False)
    num_assistant_tokens: int = 20
    assistant_confidence_threshold: float = 0.4
    # sampling warpers (used only when do_sample=True)
    temperature: float = 1.0
    top_k: int | None = 50
    top_p: float = 1.0
    min_p: float | None = None
    top_h: float | None = None
    typical_p: float = 1.0
    epsilon_cutoff: float = 0.0
    eta_cutoff: float = 0.0
    # processors applied by every strategy
    repetition_penalty: float = 1.0
    no_repeat_ngram_size: int = 0
    bad_words_ids: list | None = None
    forced_bos_token_id: int | None = None
    forced_eos_token_id: int | list | None = None
    # the processors 4.57.6's generate() has on top of those (decoding/option_checks.py checks them)
    encoder_repetition_penalty: float = 1.0
    encoder_no_repeat_ngram_size: int = 0
    sequence_bias: dict | list | None = None
    suppress_tokens: list | None = None
    begin_suppress_tokens: list | None = None
    exponential_decay_length_penalty: tuple | list | None = None
    remove_invalid_values: bool = False
    renormalize_logits: bool = False
    # re-choose the prompt's last token among those starting with its text (decoding/token_healing.py)
    token_healing: bool = False
    # classifier-free guidance (decoder-only): the unconditional input is the negative prompt, else the last token
    guidance_scale: float | None = None
    negative_prompt_ids: object = field(default=None, compare=False)
    negative_prompt_attention_mask: object = field(default=None, compare=False)
    watermarking_config: object = field(default=None, compare=False)
    # (prompt index, row ids) -> the token ids allowed next (decoding/prefix_constraint.py)
    prefix_allowed_tokens_fn: object = field(default=None, compare=False)
    # what decoding.generate returns besides the sequences
    output_scores: bool = False
    output_logits: bool = False
    return_dict_in_generate: bool = False
    # beam search
    length_penalty: float = 1.0
    early_stopping: bool | str = False
    # encoder-decoder models: the beams (or samples) of an input read one copy of its cross-attention
    # keys and values (decoding/shared_cross_attention.py): the same tokens and scores as generate(),
    # with less memory. False repeats the encoder output per row, as generate() does.
    share_cross_attention: bool = True
    # special tokens and stopping
    eos_token_id: int | list | None = None
    pad_token_id: int | None = None
    bos_token_id: int | None = None
    decoder_start_token_id: int | None = None
    stop_strings: str | list | None = None
    max_time: float | None = None  # seconds; every row stops after the step that passes it
    # Where each setting came from: field name -> layer ("caller", "generation_config", ...); a field
    # missing here kept its default (TRANSFORMERS_DEFAULT). `explain()` prints it.
    sources: dict = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def setting_names(cls) -> tuple[str, ...]:
        """The names a caller may set (every field but the bookkeeping)."""
        return tuple(f.name for f in fields(cls) if f.name != "sources")

    @classmethod
    def from_model(cls, model, **settings) -> "DecodingConfig":
        """Defaults from `model.generation_config`, then `settings` on top; validated."""
        check_setting_names(settings)
        layers = [(GENERATION_CONFIG, generation_config_values(model)), (CALLER, settings)]
        return cls.from_layers(model, layers)

    @classmethod
    def from_layers(cls, model, layers) -> "DecodingConfig":
        """The settings of `layers` [(name, {setting: value})], each over the ones before; validated.

        Every value records the layer it came from in `sources`. A caller's explicit None means "off /
        the default" (e.g. top_k=None disables top-k, as in generate()).
        """
        values, sources = {}, {}
        for layer, settings in layers:
            values.update(settings)
            sources.update(dict.fromkeys(settings, layer))
        for name, off_value in _NONE_MEANS.items():
            if name in values and values[name] is None:
                values[name] = off_value
        config = cls(**_ints_as_floats(values), sources=sources)
        validate(config, is_encoder_decoder=bool(getattr(model.config, "is_encoder_decoder", False)),
                 vocab_size=vocab_size_of(model))
        return config

    def with_settings(self, model, layer: str = CALLER, **settings) -> "DecodingConfig":
        """This config with `settings` on top, recorded as coming from `layer`; validated again."""
        check_setting_names(settings)
        values = {name: getattr(self, name) for name in self.sources}
        layers = [(source, {name: values[name] for name in values if self.sources[name] == source})
                  for source in dict.fromkeys(self.sources.values())]
        return DecodingConfig.from_layers(model, [*layers, (layer, settings)])

    def set_by(self, *layers: str) -> set[str]:
        """The settings that one of `layers` chose."""
        return {name for name, source in self.sources.items() if source in layers}

    @property
    def set_by_caller(self) -> set[str]:
        """The settings somebody chose for this call (not read from the model's generation_config)."""
        return set(self.sources) - self.set_by(GENERATION_CONFIG)

    def explain(self) -> str:
        """One line per setting: its value and the layer that chose it, e.g. "num_beams = 4 (pipeline default)"."""
        width = max(map(len, self.setting_names()))
        return "\n".join(f"{name:<{width}} = {getattr(self, name)!r} ({self.sources.get(name, TRANSFORMERS_DEFAULT)})"
                         for name in self.setting_names())

    @property
    def eos_ids(self) -> list[int]:
        """`eos_token_id` as a list (transformers accepts an int or a list)."""
        return _as_id_list(self.eos_token_id)

    @property
    def effective_pad_token_id(self) -> int | None:
        """transformers pads finished rows with the first EOS id when no pad token is set."""
        if self.pad_token_id is not None:
            return self.pad_token_id
        return self.eos_ids[0] if self.eos_ids else None



def unknown_name_error(key: str, known, what: str = "decoding setting") -> TypeError:
    """The error for a keyword nobody knows, with the closest known one (or the list) as the fix."""
    close = difflib.get_close_matches(key, list(known), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else f"; the known ones are: {', '.join(sorted(known))}"
    return TypeError(f"unknown {what} {key!r}{hint}")


def check_setting_names(settings: dict) -> None:
    """Refuse a name that is no decoding setting, suggesting the closest one."""
    names = DecodingConfig.setting_names()
    for key in settings:
        if key not in names:
            raise unknown_name_error(key, names)


def generation_config_values(model) -> dict:
    """The settings `model.generation_config` sets (fields it leaves at None are unset)."""
    generation_config = getattr(model, "generation_config", None)
    values = {name: getattr(generation_config, name, None) for name in DecodingConfig.setting_names()}
    return {name: value for name, value in values.items() if value is not None}


# Fields where None from a caller stands for the default value rather than for "unset".
_NONE_MEANS = {
    "min_length": 0, "do_sample": False, "num_beams": 1, "num_return_sequences": 1, "temperature": 1.0,
    "top_p": 1.0, "repetition_penalty": 1.0, "no_repeat_ngram_size": 0, "length_penalty": 1.0,
    "early_stopping": False, "typical_p": 1.0, "epsilon_cutoff": 0.0, "eta_cutoff": 0.0, "encoder_repetition_penalty": 1.0,
    "encoder_no_repeat_ngram_size": 0, "remove_invalid_values": False, "renormalize_logits": False, "token_healing": False,
    "output_scores": False,
    "output_logits": False, "return_dict_in_generate": False, "num_beam_groups": 1, "diversity_penalty": 0.0,
}


# Settings that are floats in generate(); an int given for one (length_penalty=2) becomes a float.
_FLOAT_SETTINGS = ("temperature", "top_p", "min_p", "repetition_penalty", "length_penalty", "typical_p", "epsilon_cutoff",
                   "eta_cutoff", "top_h", "encoder_repetition_penalty", "guidance_scale", "max_time",
                   "penalty_alpha", "diversity_penalty")


def _ints_as_floats(values: dict) -> dict:
    """`values` with ints of float settings as floats; an int too large for a float is left for validate() to refuse."""
    return {name: float(value) if name in _FLOAT_SETTINGS and _is_int(value) and abs(value) <= FLOAT32_MAX else value
            for name, value in values.items()}


def vocab_size_of(model) -> int | None:
    """The model's output vocabulary size from its config (the text config of a composite model), or None."""
    config = getattr(model, "config", None)
    text_config = config.get_text_config() if hasattr(config, "get_text_config") else config
    size = getattr(text_config, "vocab_size", None)
    return size if _is_int(size) and size > 0 else None


def _as_id_list(ids) -> list[int]:
    if ids is None:
        return []
    if isinstance(ids, int):
        return [ids]
    return [int(i) for i in ids]


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_finite(name: str, value, low: float, high: float) -> None:
    """Refuse NaN, infinities and values outside [low, high], before any arithmetic uses `value`."""
    if not (_is_number(value) and low <= value <= high and math.isfinite(value)):
        raise ValueError(f"{name} must be a finite number between {low:g} and {high:g}, got {value!r}")


def check_bounds(c: DecodingConfig, vocab_size: int | None) -> None:
    """Refuse sizes and numbers so large (or so small) that torch would fail on them or answer wrongly."""
    for name in ("max_length", "max_new_tokens", "min_length", "min_new_tokens", "no_repeat_ngram_size"):
        value = getattr(c, name)
        if value is not None and value > MAX_TOKENS:
            raise ValueError(f"{name} must be at most {MAX_TOKENS:,} tokens, got {value:,}; ask for fewer tokens")
    for name in ("num_beams", "num_return_sequences"):
        value = getattr(c, name)
        if value > MAX_ROWS:
            raise ValueError(f"{name} must be at most {MAX_ROWS} (each is a row of the model's cache), got {value:,}")
    if vocab_size is not None and c.num_beams > vocab_size:
        raise ValueError(f"num_beams ({c.num_beams:,}) must be at most the vocabulary size ({vocab_size}): "
                         "there are not that many different continuations; lower num_beams")
    check_finite("length_penalty", c.length_penalty, -MAX_LENGTH_PENALTY, MAX_LENGTH_PENALTY)
    scales = ["repetition_penalty"] + (["temperature"] if c.do_sample else [])
    for name in scales:
        if getattr(c, name) > 0:  # not > 0 (NaN included) is refused by validate() with its own fix
            check_finite(name, getattr(c, name), MIN_SCALE, MAX_SCALE)


def validate(config: DecodingConfig, is_encoder_decoder: bool, vocab_size: int | None = None) -> None:
    """Raise a ValueError/TypeError that names the setting and the fix, for every invalid combination.

    vocab_size: the model's vocabulary, which bounds num_beams (None: not checked).
    """
    c = config
    for name in ("num_beams", "num_return_sequences", "min_length", "no_repeat_ngram_size"):
        if not _is_int(getattr(c, name)):
            raise TypeError(f"{name} must be an int, got {getattr(c, name)!r}")
    for name in ("max_length", "max_new_tokens", "min_new_tokens"):
        value = getattr(c, name)
        if value is not None and not _is_int(value):
            raise TypeError(f"{name} must be an int or None, got {value!r}")
    for name in ("temperature", "top_p", "repetition_penalty", "length_penalty"):
        if not _is_number(getattr(c, name)):
            raise TypeError(f"{name} must be a number, got {getattr(c, name)!r}")
    for name in ("do_sample", "share_cross_attention"):
        if not isinstance(getattr(c, name), bool):
            raise TypeError(f"{name} must be True or False, got {getattr(c, name)!r}")

    if c.num_beams < 1:
        raise ValueError(f"num_beams must be >= 1, got {c.num_beams}; use num_beams=1 for greedy or sampling")
    if c.num_return_sequences < 1:
        raise ValueError(f"num_return_sequences must be >= 1, got {c.num_return_sequences}")
    if c.num_beams > 1 and c.num_return_sequences > c.num_beams:
        raise ValueError(f"num_return_sequences ({c.num_return_sequences}) must be <= num_beams ({c.num_beams}): "
                         "beam search returns its best finished beams; raise num_beams or lower num_return_sequences")
    if c.num_beams == 1 and not c.do_sample and c.num_return_sequences > 1:
        raise ValueError(f"num_return_sequences={c.num_return_sequences} needs do_sample=True or num_beams > 1: "
                         "greedy decoding returns the same sequence every time")

    check_bounds(c, vocab_size)
    check_processor_options(c, is_encoder_decoder)
    if c.do_sample and not c.temperature > 0:
        raise ValueError(f"temperature must be > 0 when do_sample=True, got {c.temperature}; "
                         "for greedy decoding pass do_sample=False")
    if c.top_k is not None and not _is_int(c.top_k):
        raise TypeError(f"top_k must be an int (0 or None disables it), got {c.top_k!r}")
    if c.top_k is not None and c.top_k < 0:
        raise ValueError(f"top_k must be >= 0 (0 or None disables it), got {c.top_k}")
    if not 0 < c.top_p <= 1:
        raise ValueError(f"top_p must be in (0, 1], got {c.top_p}")
    if c.min_p is not None and (not _is_number(c.min_p) or not 0 <= c.min_p <= 1):
        raise ValueError(f"min_p must be in [0, 1] (or None to disable it), got {c.min_p!r}")
    if not c.repetition_penalty > 0:
        raise ValueError(f"repetition_penalty must be > 0 (1.0 disables it), got {c.repetition_penalty}")
    if c.no_repeat_ngram_size < 0:
        raise ValueError(f"no_repeat_ngram_size must be >= 0 (0 disables it), got {c.no_repeat_ngram_size}")
    if not (isinstance(c.early_stopping, bool) or c.early_stopping == "never"):
        raise ValueError(f"early_stopping must be True, False or 'never', got {c.early_stopping!r}")

    if c.max_new_tokens is not None and c.max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be >= 1, got {c.max_new_tokens}")
    if c.max_length is not None and c.max_length < 1:
        raise ValueError(f"max_length must be >= 1, got {c.max_length}")
    if c.min_length < 0:
        raise ValueError(f"min_length must be >= 0, got {c.min_length}")
    if c.min_new_tokens is not None and c.min_new_tokens < 0:
        raise ValueError(f"min_new_tokens must be >= 0, got {c.min_new_tokens}")

    for name in ("eos_token_id", "forced_eos_token_id"):
        value = getattr(c, name)
        ids = [value] if _is_int(value) else value
        if value is not None and (not isinstance(ids, (list, tuple)) or not all(_is_int(i) and i >= 0 for i in ids)):
            raise TypeError(f"{name} must be a non-negative int or a list of them, got {value!r}")
    for name in ("pad_token_id", "bos_token_id", "decoder_start_token_id", "forced_bos_token_id"):
        value = getattr(c, name)
        if value is not None and (not _is_int(value) or value < 0):
            raise TypeError(f"{name} must be a non-negative int or None, got {value!r}")
    if c.bad_words_ids is not None:
        ok = isinstance(c.bad_words_ids, (list, tuple)) and len(c.bad_words_ids) > 0 and all(
            isinstance(seq, (list, tuple)) and len(seq) > 0 and all(_is_int(i) and i >= 0 for i in seq)
            for seq in c.bad_words_ids)
        if not ok:
            raise ValueError("bad_words_ids must be a non-empty list of non-empty lists of token ids, e.g. [[12], [7, 9]]; "
                             f"got {c.bad_words_ids!r}")
    if c.stop_strings is not None:
        strings = [c.stop_strings] if isinstance(c.stop_strings, str) else c.stop_strings
        if not isinstance(strings, (list, tuple)) or not strings or not all(isinstance(s, str) and s for s in strings):
            raise ValueError(f"stop_strings must be a non-empty string or a list of them, got {c.stop_strings!r}")
    if is_encoder_decoder and c.decoder_start_token_id is None and c.bos_token_id is None:
        raise ValueError("an encoder-decoder model needs decoder_start_token_id (or bos_token_id) to start decoding; "
                         "pass decoder_start_token_id=... or set it in model.generation_config")
