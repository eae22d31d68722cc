"""The generation benchmarks: text generation (decoder-only) and the seq2seq tasks (summarization,
translation, text2text), against `model.generate()` and CTranslate2.

Every run produces exactly the same number of new tokens (min_new_tokens = max_new_tokens, and
CTranslate2's min/max length), so tokens/s compare: random weights would otherwise stop at a
random EOS. nopipe runs through its task class once the module exists, through `decoding.generate`
on a model placed by `core` until then (the report's `entry` column says which). Greedy and beam
outputs of nopipe float32 are compared with `generate()`'s: they should be the same text.
"""

import importlib.util
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

import torch

from benchmarks.models import MODELS
from benchmarks.peers import ct2_system, hf_generate, hf_pipeline, llama_cpp_system, nopipe_decoding, nopipe_task
from benchmarks.suite import Bench, Case, System
from benchmarks.targets import FLOAT32_GENERATE, INT8_MEMORY, ct2_int8_target
from benchmarks.work import decoding_work, model_shape
from benchmarks.workloads import mixed_texts, prompt_ids, token_lengths

SAME_OUTPUT_TARGET = 1.0  # nopipe float32 greedy/beam texts against generate()'s


# ---- running one case, for each kind of system -------------------------------------------------
def run_ids(generate: Callable, case: Case, tokenizer, encoder_decoder: bool):
    """A `generate(ids, mask, **settings)` function (nopipe's loop or transformers') on a case.

    Decoder-only prompts are lists of ids of one length (no padding); seq2seq inputs are texts.
    Returns the new tokens only: (rows, new tokens).
    """
    if encoder_decoder:
        encoded = tokenizer(case.inputs, padding=True, truncation=True, return_tensors="pt")
        ids, mask = encoded["input_ids"], encoded["attention_mask"]
    else:
        ids = torch.tensor(case.inputs)
        mask = torch.ones_like(ids)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    output = generate(ids, mask, pad_token_id=pad, **case.settings)
    sequences = getattr(output, "sequences", output)
    new_tokens = sequences[:, 1 if encoder_decoder else ids.shape[1]:]  # after the decoder start token, or the prompt
    return new_tokens.numel(), new_tokens


def run_text_task(runner, case: Case, **options):
    """A nopipe task class or a pipeline, which answer with text: the token count is the one asked for."""
    with warnings.catch_warnings():
        # Translation warns that few new tokens may cut a translation short: here that is the point.
        warnings.filterwarnings("ignore", message=".*may be cut short", category=UserWarning)
        outputs = runner(case.texts, batch_size=len(case.texts), **options, **case.settings)
    return len(case.texts) * case.settings["max_new_tokens"], outputs


def ct2_sampling(settings: dict) -> dict:
    if not settings.get("do_sample"):
        return dict(sampling_topk=1)
    return dict(sampling_topk=settings.get("top_k") or 0, sampling_temperature=settings.get("temperature", 1.0))


def run_ct2_generator(generator, case: Case, tokenizer):
    settings = case.settings
    results = generator.generate_batch([tokenizer.convert_ids_to_tokens(ids) for ids in case.inputs],
                                       max_length=settings["max_new_tokens"], min_length=settings["min_new_tokens"],
                                       include_prompt_in_result=False, **ct2_sampling(settings))
    return sum(len(result.sequences_ids[0]) for result in results), results


def run_ct2_translator(translator, case: Case, tokenizer, target_prefix: list | None, generation: dict):
    settings = case.settings
    source = [tokenizer.convert_ids_to_tokens(ids) for ids in tokenizer(case.inputs, truncation=True)["input_ids"]]
    prefix = [target_prefix] * len(source) if target_prefix else None
    results = translator.translate_batch(
        source, target_prefix=prefix, beam_size=settings["num_beams"], max_batch_size=len(source),
        max_decoding_length=settings["max_new_tokens"], min_decoding_length=settings["min_new_tokens"],
        no_repeat_ngram_size=generation.get("no_repeat_ngram_size") or 0,
        length_penalty=generation.get("length_penalty") or 1.0)
    return sum(len(result.hypotheses[0]) for result in results), results


def run_llama_cpp(model, case: Case):
    """llama.cpp decodes one prompt at a time (no batch API): each row of the case in turn, the same number
    of new tokens each (its generator does not stop at EOS), greedy unless the case samples."""
    settings, outputs = case.settings, []
    sampled = settings.get("do_sample")
    for ids in case.inputs:
        model.reset()
        new = []
        for token in model.generate(ids, top_k=(settings.get("top_k") or 0) if sampled else 1, top_p=1.0,
                                    temp=settings.get("temperature", 1.0) if sampled else 0.0):
            new.append(token)
            if len(new) == settings["max_new_tokens"]:
                break
        outputs.append(new)
    return sum(len(new) for new in outputs), outputs


def generated_texts(outputs, tokenizer) -> list[str]:
    """The texts of a run's outputs: new-token ids (run_ids) or the task's dicts; spaces normalised,
    since a task may decode with other clean-up options than `batch_decode` here."""
    if isinstance(outputs, torch.Tensor):
        texts = tokenizer.batch_decode(outputs, skip_special_tokens=True)
    else:
        firsts = [output[0] if isinstance(output, list) else output for output in outputs]  # per-prompt lists
        texts = [next(iter(output.values())) for output in firsts]  # {"summary_text": ...} and the like
    return [" ".join(text.split()) for text in texts]


def same_texts(ours, reference, tokenizer) -> float:
    mine, theirs = generated_texts(ours, tokenizer), generated_texts(reference, tokenizer)
    return sum(a == b for a, b in zip(mine, theirs, strict=True)) / len(mine)


def generation_systems(module: str, class_name: str, folder, head: str, tokenizer, threads: int, *,
                       encoder_decoder: bool, run_ct2: Callable, call_options: dict | None = None,
                       load_options: dict | None = None) -> list[System]:
    """nopipe float32 and int8, `generate()`, CTranslate2 float32 and int8, for one model.

    nopipe is `tasks.<module>.<class_name>` (called with call_options, loaded with load_options)
    if that module exists, else its decoding loop on a model placed by core.
    """
    def run_task(runner, case):
        return run_text_task(runner, case, **(call_options or {}))

    def run_loop(generate, case):
        return run_ids(generate, case, tokenizer, encoder_decoder)

    if importlib.util.find_spec(f"tasks.{module}") is not None:
        systems = [nopipe_task(module, class_name, folder, dtype, run_task, **(load_options or {}))
                   for dtype in ("float32", "int8")]
    else:
        systems = [nopipe_decoding(folder, head, dtype, run_loop) for dtype in ("float32", "int8")]
    systems.append(hf_generate(folder, head, run_loop))
    kind = "translator" if encoder_decoder else "generator"
    return systems + [ct2_system(folder, compute, threads, kind, run_ct2) for compute in ("float32", "int8")]


def measure_and_compare(bench: Bench, task: str, model: str, systems: list[System], cases: list[Case],
                        tokenizer, float32_target: float) -> None:
    """Measure every system on every case; record the ratios against the peers and the output check."""
    for system in systems:
        bench.measure(task, model, system, cases)
    for case in cases:
        batch = len(case.inputs)
        bench.compare(task, model, case.name, ("nopipe", "float32"), ("generate()", "float32"), target=float32_target)
        bench.compare(task, model, case.name, ("nopipe", "int8"), ("CTranslate2", "int8"),
                      target=ct2_int8_target(task, batch))
        bench.compare(task, model, case.name, ("nopipe", "float32"), ("CTranslate2", "float32"))
        bench.compare_memory(task, model, case.name, ("nopipe", "int8"), ("nopipe", "float32"), INT8_MEMORY)
        bench.compare_memory(task, model, case.name, ("CTranslate2", "int8"), ("CTranslate2", "float32"), None)
        if any(system.name == "pipeline (default batch)" for system in systems):
            bench.compare(task, model, case.name, ("nopipe", "float32"), ("pipeline (default batch)", "float32"))
        if not case.settings.get("do_sample"):
            bench.agree(task, model, case.name, ("nopipe", "float32"), ("generate()", "float32"),
                        partial(same_texts, tokenizer=tokenizer), target=SAME_OUTPUT_TARGET)


# ---- text generation ----------------------------------------------------------------------------
def text_generation_cases(tokenizer, sizes, shape=None) -> list[Case]:
    """Batch 1 and 8 (or as sized), greedy and sampled, prompts of `prompt_tokens` ids; `shape` (work.Shape)
    gives each case the weights read per new token."""
    prompts = prompt_ids(tokenizer, max(sizes.generation_batches), sizes.prompt_tokens)
    cases = []
    for batch in sizes.generation_batches:
        inputs, texts = prompts[:batch], tokenizer.batch_decode(prompts[:batch])
        for sampled in (False, True) if sizes.sampling else (False,):
            n = sizes.new_tokens
            settings = dict(max_new_tokens=n, min_new_tokens=n, do_sample=sampled)
            if sampled:
                settings.update(top_k=50, top_p=1.0, temperature=1.0)
            warmup = Case("warm-up", inputs, dict(settings, max_new_tokens=4, min_new_tokens=4), texts=texts)
            cases.append(Case(f"batch {batch}, {'sampled' if sampled else 'greedy'}, {n} new tokens", inputs,
                              settings, unit="tokens/s", warmup=warmup, texts=texts,
                              work=decoding_work(shape, batch) if shape else None))
    return cases


@dataclass(frozen=True)
class TextGenerationTask:
    """Decoder-only models; `run(bench, model, folder)` benchmarks one."""

    models: list[str]
    task: str = "text-generation"

    def run(self, bench: Bench, model: str, folder) -> None:
        from transformers import AutoTokenizer

        task, sizes, threads = self.task, bench.sizes, bench.options.threads
        tokenizer = AutoTokenizer.from_pretrained(folder)
        head = MODELS[model].head
        cases = text_generation_cases(tokenizer, sizes, model_shape(folder, head))
        bench.note(task, f"{model}: prompts of {sizes.prompt_tokens} tokens")
        systems = generation_systems(
            "text_generation", "TextGenerator", folder, head, tokenizer, threads, encoder_decoder=False,
            run_ct2=lambda generator, case: run_ct2_generator(generator, case, tokenizer),
            call_options=dict(return_full_text=False))
        if model == "smollm2-135m" and bench.options.mode == "real":
            systems.append(llama_cpp_system(threads, run_llama_cpp))
        if sizes.pipeline_peers:
            systems.append(hf_pipeline(task, folder, None, lambda pipe, case, options: run_text_task(
                pipe, case, return_full_text=False)))
        measure_and_compare(bench, task, model, systems, cases, tokenizer, FLOAT32_GENERATE)


# ---- summarization, translation, text2text --------------------------------------------------------
@dataclass(frozen=True)
class Seq2SeqTask:
    """What differs between summarization, translation and text2text; `run(bench, model, folder)`
    benchmarks one model."""

    task: str
    models: list[str]
    module: str  # tasks.<module>.<class_name>
    class_name: str
    lengths: tuple  # (min, max) input tokens
    languages: dict = field(default_factory=dict)  # model -> (source, target) codes, for M2M100

    def run(self, bench: Bench, model: str, folder) -> None:
        from transformers import AutoConfig, AutoTokenizer, GenerationConfig

        sizes, task, threads = bench.sizes, self.task, bench.options.threads
        tokenizer = AutoTokenizer.from_pretrained(folder)
        generation = GenerationConfig.from_pretrained(folder).to_dict()
        low, high = self.lengths
        texts = mixed_texts(tokenizer, sizes.seq2seq_batch, min(low, sizes.max_tokens), min(high, sizes.max_tokens))
        bench.note(task, f"{model}: {len(texts)} inputs, tokens {token_lengths(tokenizer, texts)}")
        # nopipe's task classes put the model's `config.prefix` before each text, as the pipeline did
        # (distilbart-cnn's is " "); the peers get the prefixed texts, so every system reads the same ids.
        prefix = getattr(AutoConfig.from_pretrained(folder), "prefix", None) or ""
        n, beams = sizes.seq2seq_new_tokens, sizes.beams
        settings = dict(num_beams=beams, max_new_tokens=n, min_new_tokens=n)
        load_options, target_prefix = {}, None
        if model in self.languages:  # M2M100 reads a source language token and starts with the target's
            source, target = self.languages[model]
            tokenizer.src_lang = source
            settings["forced_bos_token_id"] = tokenizer.get_lang_id(target)
            load_options, target_prefix = dict(src_lang=source, tgt_lang=target), [tokenizer.lang_code_to_token[target]]
        inputs = [prefix + text for text in texts]
        warmup = Case("warm-up", inputs, dict(settings, max_new_tokens=2, min_new_tokens=2), texts=texts)
        case = Case(f"batch {len(texts)}, beam {beams}, {n} new tokens", inputs, settings, unit="tokens/s",
                    warmup=warmup, texts=texts)
        head = MODELS[model].head
        systems = generation_systems(
            self.module, self.class_name, folder, head, tokenizer, threads, encoder_decoder=True,
            run_ct2=lambda translator, case: run_ct2_translator(translator, case, tokenizer, target_prefix, generation),
            load_options=load_options)
        measure_and_compare(bench, task, model, systems, [case], tokenizer, FLOAT32_GENERATE)
