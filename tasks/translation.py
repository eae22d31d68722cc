"""Translation with an encoder-decoder model, as `pipeline("translation_xx_to_yy")`.

    Translator.from_pretrained("Helsinki-NLP/opus-mt-en-fr")("How old are you?")
    Translator.from_pretrained("google-t5/t5-base", task="translation_en_to_fr")(text)
    Translator.from_pretrained("facebook/m2m100_418M", src_lang="en", tgt_lang="fr")(text)
    # [{"translation_text": "..."}]

Models name the languages in one of three ways, and the runner finds out which from the checkpoint:
- one language pair (Marian opus-mt): nothing to choose; plain tokenization.
- task prefixes (T5): `task_specific_params["translation_en_to_fr"]` holds the prefix
  "translate English to French: " and the decoding settings; the pair picks the entry.
- language tokens (M2M100, NLLB, mBART): the tokenizer marks the source language, and the first
  generated token is forced to the target language's token (`forced_bos_token_id`).
Languages come from `task="translation_en_to_fr"` or `src_lang=`/`tgt_lang=`, at construction or per
call. A pair the model cannot do is a ValueError that lists what it can do. A task-prefix model
loaded with no language named gets the first translation pair of its `task_specific_params`
(T5: English to German), with a warning, as 4.57.6's `pipeline("translation")` did.

The recipe itself (preprocess -> forward -> postprocess) is tasks/seq2seq.py.

Deliberate differences from the 4.57.6 pipeline: README, 'Where nopipe differs from 4.57.6'.
"""


from core.runner import answers_streams
from decoding.warn import warn_caller
from tasks.seq2seq import Seq2SeqRunner, TaskRecipe, first_offender, task_recipe


def language_pair(key) -> tuple[str, str] | None:
    """("en", "fr") for "translation_en_to_fr"; None for anything else."""
    parts = key.split("_") if isinstance(key, str) else []
    if len(parts) == 4 and parts[0] == "translation" and parts[2] == "to":
        return parts[1], parts[3]
    return None


def parse_task(task: str | None) -> tuple[str | None, str | None]:
    """"translation_en_to_fr" -> ("en", "fr"); "translation" or None -> (None, None)."""
    if task is None or task == "translation":
        return None, None
    pair = language_pair(task)
    if pair is None:
        raise ValueError("task must be 'translation' or 'translation_XX_to_YY' (e.g. 'translation_en_to_fr'), "
                         f"got {task!r}")
    return pair


def uses_language_tokens(tokenizer) -> bool:
    """M2M100, NLLB, mBART and the like: the tokenizer knows the pipeline's hook for language tokens."""
    return callable(getattr(tokenizer, "_build_translation_inputs", None))


def language_codes(tokenizer) -> list[str]:
    """The language codes a language-token tokenizer accepts ("en", "fr" for M2M100; "eng_Latn" for NLLB)."""
    for name in ("lang_code_to_id", "lang_code_to_token"):
        codes = getattr(tokenizer, name, None)
        if codes:
            return list(codes)
    return [token for token in getattr(tokenizer, "additional_special_tokens", None) or [] if "_" in token]


def language_token_id(tokenizer, language: str) -> int:
    """The token that starts a text in `language` (M2M100: "__fr__"; NLLB/mBART: the code itself)."""
    if hasattr(tokenizer, "get_lang_id"):
        return tokenizer.get_lang_id(language)
    return tokenizer.convert_tokens_to_ids(language)


def first_translation_pair(model) -> tuple[str | None, str | None]:
    """The pair of the first translation_XX_to_YY key of `task_specific_params`, in the config's order
    (the one 4.57.6's `pipeline("translation")` fell back to); (None, None) when there is none."""
    pairs = (language_pair(key) for key in getattr(model.config, "task_specific_params", None) or {})
    return next((pair for pair in pairs if pair is not None), (None, None))


def translation_pairs(model) -> list[str]:
    """The translation entries of `task_specific_params` (T5: translation_en_to_de, _en_to_fr, _en_to_ro)."""
    params = getattr(model.config, "task_specific_params", None) or {}
    return sorted(key for key in params if key.startswith("translation_"))


class Translator(Seq2SeqRunner):
    task = "translation"
    output_name = "translation"

    def __init__(self, model, tokenizer, placement=None, *, task: str | None = None, src_lang: str | None = None,
                 tgt_lang: str | None = None, batch_size: int = 1, **settings):
        """task ("translation_en_to_fr") or src_lang/tgt_lang choose the pair; per-call values override them."""
        super().__init__(model, tokenizer, placement, batch_size=batch_size, **settings)
        task_src, task_tgt = parse_task(task)
        for name, given, from_task in (("src_lang", src_lang, task_src), ("tgt_lang", tgt_lang, task_tgt)):
            if given is not None and from_task is not None and given != from_task:
                raise ValueError(f"{name}={given!r} contradicts task={task!r}; pass one or the other")
        self.src_lang = src_lang or task_src
        self.tgt_lang = tgt_lang or task_tgt
        if self.src_lang is None and self.tgt_lang is None:
            self.src_lang, self.tgt_lang = self.fall_back_to_the_first_pair()
        # A model that needs a pair (M2M100, T5) may be loaded without one, as pipeline("translation")
        # could, and get it per call; a pair it cannot do is refused now.
        needs_pair = uses_language_tokens(tokenizer) or bool(translation_pairs(model))
        has_pair = self.src_lang is not None and self.tgt_lang is not None
        self.recipe = self.translation_recipe(self.src_lang, self.tgt_lang) if has_pair or not needs_pair else None

    def fall_back_to_the_first_pair(self) -> tuple[str | None, str | None]:
        """No language named: the model's first task_specific_params pair, with a warning, as 4.57.6 did."""
        src_lang, tgt_lang = first_translation_pair(self.model)
        if src_lang is not None:
            warn_caller(f"no language pair given; translating {src_lang} to {tgt_lang} "
                        f"(translation_{src_lang}_to_{tgt_lang}, the first pair in the model's task_specific_params, "
                        f"as pipeline('translation') did). Pass task='translation_XX_to_YY' or src_lang=/tgt_lang= "
                        f"to choose one of {', '.join(translation_pairs(self.model))}")
        return src_lang, tgt_lang

    def default_recipe(self) -> TaskRecipe:
        """The recipe chosen at construction; without one, the error that says which languages to pass."""
        if self.recipe is None:
            return self.translation_recipe(self.src_lang, self.tgt_lang)
        return self.recipe

    def translation_recipe(self, src_lang: str | None, tgt_lang: str | None) -> TaskRecipe:
        """Prefix, decoding settings and language tokens for translating src_lang -> tgt_lang."""
        if uses_language_tokens(self.tokenizer):
            return self.language_token_recipe(src_lang, tgt_lang)
        pairs = translation_pairs(self.model)
        if pairs:
            if src_lang is None or tgt_lang is None:
                raise ValueError(f"this model translates through task prefixes; choose a pair with task= "
                                 f"(one of {', '.join(pairs)}) or src_lang=/tgt_lang=")
            key = f"translation_{src_lang}_to_{tgt_lang}"
            if key not in pairs:
                raise ValueError(f"this model has no {key!r} in its task_specific_params; it knows {', '.join(pairs)}")
            return task_recipe(self.model, key)
        self.check_single_pair(src_lang, tgt_lang)
        if src_lang is not None and tgt_lang is not None:
            return task_recipe(self.model, f"translation_{src_lang}_to_{tgt_lang}")
        return task_recipe(self.model, "translation")

    def language_token_recipe(self, src_lang: str | None, tgt_lang: str | None) -> TaskRecipe:
        codes = language_codes(self.tokenizer)
        shown = ", ".join(codes)
        if src_lang is None or tgt_lang is None:
            raise ValueError(f"{type(self.tokenizer).__name__} models translate between many languages: pass "
                             f"src_lang= and tgt_lang= (or task='translation_XX_to_YY'); language codes: {shown}")
        for name, code in (("src_lang", src_lang), ("tgt_lang", tgt_lang)):
            if codes and code not in codes:
                raise ValueError(f"unknown {name} {code!r} for {type(self.tokenizer).__name__}; valid codes: {shown}")
        base = task_recipe(self.model, f"translation_{src_lang}_to_{tgt_lang}")
        settings = {**base.settings, "forced_bos_token_id": language_token_id(self.tokenizer, tgt_lang)}
        return TaskRecipe(base.name, base.prefix, settings, src_lang, tgt_lang)

    def check_single_pair(self, src_lang: str | None, tgt_lang: str | None) -> None:
        """A one-pair model (Marian) asked for another pair: say so rather than translate into the wrong language."""
        model_pair = (getattr(self.tokenizer, "source_lang", None), getattr(self.tokenizer, "target_lang", None))
        for name, wanted, known in (("src_lang", src_lang, model_pair[0]), ("tgt_lang", tgt_lang, model_pair[1])):
            if wanted is not None and isinstance(known, str) and wanted.lower() != known.lower():
                raise ValueError(f"this model translates {model_pair[0]} to {model_pair[1]}; {name}={wanted!r} is not "
                                 "possible with it. Choose a model for that pair.")

    # -- preprocess --------------------------------------------------------------------------------

    def check_lengths(self, input_lengths: list[int], max_length: int) -> None:
        """A translation is about as long as its text: an input near max_length may be cut short."""
        offender = first_offender(input_lengths, lambda length: length > 0.9 * max_length)
        if offender:
            warn_caller(f"{offender}, close to or above max_length={max_length}, so its translation may be cut "
                        f"short; pass a larger max_length (e.g. max_length={2 * max(input_lengths)}) or "
                        "max_new_tokens")

    def encode(self, text: str, recipe: TaskRecipe, **tokenizer_kwargs) -> dict:
        if recipe.src_lang is None:
            return super().encode(text, recipe, **tokenizer_kwargs)
        # The pipeline's own hook: each tokenizer places its source-language token its own way
        # (M2M100/NLLB before the text, older mBART after it). No prefix on this path, as in the pipeline.
        return self.tokenizer._build_translation_inputs(text, return_tensors=None, src_lang=recipe.src_lang,
                                                        tgt_lang=recipe.tgt_lang, **tokenizer_kwargs)

    @answers_streams
    def __call__(self, inputs, *, src_lang: str | None = None, tgt_lang: str | None = None, **options):
        """Translate one text or many. src_lang/tgt_lang pick another pair for this call only.

        Options are those of `Seq2SeqRunner.run` (max_length, num_beams, truncation, return_tensors...).
        """
        if src_lang is None and tgt_lang is None:
            recipe = self.default_recipe()
        else:
            recipe = self.translation_recipe(src_lang or self.src_lang, tgt_lang or self.tgt_lang)
        return self.run(inputs, recipe, **options)
