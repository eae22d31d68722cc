"""Which decoding settings a generation call uses: one pure function, `resolve_settings`, run once per call.

Each call layers these sources, weakest first, in the order of the 4.57.6 pipelines:

    transformers default      the DecodingConfig field defaults (transformers' effective defaults)
    generation_config         the model's `generation_config`
    pipeline default          `num_beams=4` (seq2seq); `max_new_tokens=256, do_sample=True,
                              temperature=0.7` (text generation)
    tokenizer                 its pad token pads finished rows, as the batches are padded with it
    task_specific_params      `config.task_specific_params[task]` (distilbart-cnn's beams and lengths)
    construction              options given to the runner when it was built
    caller                    options given to this call

A pipeline default beats the model's generation_config: 4.57.6 takes a model's value only where the
pipeline's default is transformers' global one, and these never are (so m2m100's `num_beams=5` gives
way to 4). The returned `DecodingConfig` records which layer chose each field: `config.sources`, or
`config.explain()` for a table, answers "why is num_beams 4?".

Deliberate differences from the 4.57.6 pipeline: README, 'Where nopipe differs from 4.57.6'.

Hooks are callables, not values: `logits_processors` (transformers' `logits_processor`, e.g. a
LogitsProcessorList) and `strategy` skip the layering and reach `decoding.generate` as given; a
hook set to None in a call clears the one given at construction. `trace` is refused: an answer in
the pipeline's shape has no place for it, and the message says how to get one.
"""

from decoding import DecodingConfig
from decoding.config import CALLER, GENERATION_CONFIG, generation_config_values, unknown_name_error

DECODING_SETTINGS = DecodingConfig.setting_names()
DEFAULTS = {name: DecodingConfig.__dataclass_fields__[name].default for name in DECODING_SETTINGS}
PIPELINE_DEFAULT = "pipeline default"
TOKENIZER = "tokenizer"
TASK_PARAMS = "task_specific_params"
CONSTRUCTION = "construction"
CHOSEN_BY_THE_USER = (CALLER, CONSTRUCTION)
# The pipeline adds its sampling defaults only when sampling (transformers 5 does the same), so a
# greedy call does not carry a temperature it never uses.
SAMPLING_SETTINGS = {"temperature", "top_k", "top_p", "min_p"}
TRANSFORMERS_MAX_LENGTH = 20  # GenerationConfig's own max_length, which 4.57.6 read as "nobody set it"

HOOKS = ("logits_processors", "strategy", "stopping_criteria")
HOOK_ALIASES = {"logits_processor": "logits_processors"}  # transformers' name for the same hook
TRACE_IS_NOT_AN_OPTION = (
    "trace= is not an option of the task runners: their answers keep the pipeline's shape, which has no "
    "place for a trace. To see why each token was chosen, call decoding.generate(runner.model, input_ids, "
    "trace=True) on the prompt's ids and print decoding.format_trace(output.trace, runner.tokenizer)")


# decoding.generate's outputs beyond the sequences: a runner's answer (the pipeline's shape) has no place for them.
GENERATE_OUTPUTS = ("output_scores", "output_logits", "return_dict_in_generate")


def check_options(options: dict, task_options: tuple[str, ...] = ()) -> dict:
    """Refuse an option that is neither a decoding setting, a hook nor one of the task's, with a suggestion."""
    if "trace" in options:
        raise TypeError(TRACE_IS_NOT_AN_OPTION)
    asked = [name for name in GENERATE_OUTPUTS if options.get(name)]
    if asked:
        raise TypeError(f"{asked[0]}=True asks for generate()'s per-step outputs, which a runner's answer (the "
                        f"pipeline's shape) has no place for; call decoding.generate(runner.model, input_ids, "
                        f"{asked[0]}=True) on the prompt's ids")
    if options.get("token_healing"):
        raise TypeError("token_healing=True rewrites the prompt's last token, and a runner's answer is the text after "
                        "the prompt it was given; call decoding.generate(runner.model, input_ids, token_healing=True, "
                        "tokenizer=runner.tokenizer) on the prompt's ids")
    known = DECODING_SETTINGS + HOOKS + tuple(HOOK_ALIASES) + tuple(task_options)
    for key in options:
        if key not in known:
            raise unknown_name_error(key, known, what="option")
    return options


def check_logits_processors(processors) -> list:
    """A list of (input_ids, scores) -> scores callables, such as transformers' LogitsProcessorList."""
    if not isinstance(processors, (list, tuple)):
        hint = "; pass it in a list: [processor]" if callable(processors) else ""
        raise TypeError(f"logits_processors must be a list of (input_ids, scores) -> scores callables, "
                        f"got {type(processors).__name__}{hint}")
    return list(processors)


def split_hooks(options: dict) -> tuple[dict, dict]:
    """(decoding settings, hooks) of checked options. `logits_processor=` is read as `logits_processors=`;
    a hook given as None stays in the hooks as None (it clears a constructed one, see `merge_hooks`)."""
    settings = dict(options)
    for alias, name in HOOK_ALIASES.items():
        if alias in settings:
            if name in settings:
                raise ValueError(f"{alias}= (transformers' name) and {name}= are the same option; pass only one")
            settings[name] = settings.pop(alias)
    hooks = {name: settings.pop(name) for name in HOOKS if name in settings}
    if hooks.get("logits_processors") is not None:
        hooks["logits_processors"] = check_logits_processors(hooks["logits_processors"])
    return settings, hooks


def merge_hooks(constructed: dict, call: dict) -> dict:
    """The hooks of a call: its own over the constructed ones; None clears one, and is then left out."""
    return {name: hook for name, hook in {**constructed, **call}.items() if hook is not None}


def set_by_model(model) -> dict:
    """The decoding settings the model's generation_config sets to something other than transformers' default.

    A max_length of TRANSFORMERS_MAX_LENGTH is transformers' default written out (4.57.6 treated it
    as unset too).
    """
    unset = {**DEFAULTS, "max_length": TRANSFORMERS_MAX_LENGTH}
    return {name: value for name, value in generation_config_values(model).items()
            if value != DEFAULTS[name] and value != unset[name]}


def task_params(model, task: str | None) -> tuple[dict, str | None]:
    """(decoding settings, prefix) of `config.task_specific_params[task]`; ({}, None) when absent.

    Keys that are not decoding settings are dropped, as `GenerationConfig.update` would ignore them.
    """
    params = dict((getattr(model.config, "task_specific_params", None) or {}).get(task) or {})
    prefix = params.pop("prefix", None)
    return {key: value for key, value in params.items() if key in DECODING_SETTINGS}, prefix


def pipeline_defaults_used(defaults: dict, above: dict, chosen: dict) -> dict:
    """The pipeline's defaults that apply: those nobody above set, no default max_new_tokens where
    anyone chose a max_length, and the sampling ones only when sampling."""
    added = {key: value for key, value in defaults.items()
             if key not in above and not (key == "max_new_tokens" and "max_length" in chosen)}
    if not {**chosen, **added}.get("do_sample"):
        added = {key: value for key, value in added.items() if key not in SAMPLING_SETTINGS}
    return added


def resolve_settings(model, tokenizer, *, call: dict, constructed: dict = None, task_settings: dict = None,
                     defaults: dict = None) -> DecodingConfig:
    """The settings of one call, each recorded with the layer that chose it (see the module docstring).

    call / constructed: decoding settings (hooks already split off) of the call and of the runner's
    construction; task_settings: the task's `task_specific_params`; defaults: the pipeline's.
    """
    constructed, task_settings, defaults = constructed or {}, task_settings or {}, defaults or {}
    above = {**task_settings, **constructed, **call}
    chosen = {**set_by_model(model), **above}
    padding = {}
    if "pad_token_id" not in chosen and getattr(tokenizer, "pad_token_id", None) is not None:
        padding["pad_token_id"] = tokenizer.pad_token_id
    layers = [(GENERATION_CONFIG, generation_config_values(model)),
              (PIPELINE_DEFAULT, pipeline_defaults_used(defaults, above, chosen)),
              (TOKENIZER, padding), (TASK_PARAMS, task_settings), (CONSTRUCTION, constructed), (CALLER, call)]
    return DecodingConfig.from_layers(model, layers)
