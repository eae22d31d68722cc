"""Write tests/goldens/generation.json: what the transformers 4.57.6 pipelines answer on our fixtures.

Run with the 4.57.6 virtualenv (transformers 5 has no summarization/translation pipelines):

    HF_HUB_OFFLINE=1 /work/venv457/bin/python tests/goldens/make_generation_goldens.py

Each case names the pipeline task, the fixture model, the inputs and the call options, and stores
the pipeline's answer; the nopipe tests replay the same cases through our runners. Two things are
added to the pipeline call only (recorded under "reference_options"):
- `max_new_tokens=None` where the case sets no `max_new_tokens` and a `max_length` is set: 4.57.6
  pipelines default to `max_new_tokens=256`, which overrides every `max_length` (the caller's,
  `task_specific_params`, the model's); nopipe honours those lengths, as the pipelines did before
  4.52 (spec, "Decisions"). For the seq2seq tasks that is every case without `max_new_tokens` (their
  fixtures all set a max_length); for text generation, the cases with a `max_length` from the caller
  or the fixture's `task_specific_params` (GPT-2's 50).
- the seed: `transformers.set_seed(seed)` right before the call, as the tests do with ours.

A case with a "generation_config" field runs on a copy of its fixture whose generation_config.json
has those values on top (golden_file.model_folder, which the replay test uses too): a model's own
temperature and top_p, without one more committed fixture.

And one thing is changed in 4.57.6 while a case runs: its M2M100 model draws `torch.rand([])` for
the layerdrop check of every layer on every forward pass, in eval mode too (modeling_m2m_100.py
l.877 and l.1124; the draw only matters when training). That moves the random stream a seeded
sampling call uses, so its tokens would depend on the number of layers. transformers 5 draws only
when training, and nopipe runs the transformers 5 model; here that one draw returns a constant
(`torch.rand([])` with no generator), which leaves every value the model computes unchanged.
"""

import json
import tempfile
from contextlib import contextmanager
from pathlib import Path

import torch
from golden_file import make_goldens, model_folder
from transformers import pipeline, set_seed

HERE = Path(__file__).resolve().parent
FIXTURES = HERE.parent / "fixtures" / "models"
CORPUS = HERE.parent / "fixtures" / "corpus.txt"
OUTPUT = HERE / "generation.json"
SCRATCH = tempfile.TemporaryDirectory(prefix="nopipe-goldens-")  # fixture copies with another generation_config

# A ChatML template like SmolLM2's; the llama fixture ships none, so chat cases set this one.
CHATML_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def corpus_text(first: int, count: int) -> str:
    lines = [line for line in CORPUS.read_text(encoding="utf-8").splitlines() if line.strip()]
    return " ".join(lines[first:first + count])


ARTICLE = corpus_text(0, 4)
ARTICLE_2 = corpus_text(10, 3)
SHORT = corpus_text(20, 1)
LONG = corpus_text(0, 11) + " The old lighthouse keeper"  # ~300 GPT-2 fixture tokens, more than its 256 positions


def corpus_line(index: int) -> str:
    return corpus_text(index, 1)


def case(id, task, fixture, inputs, options=None, seed=None, init=None, chat_template=None, generation_config=None):
    """One golden case; "generation_config" (values put on top of the fixture's) only where a case sets it."""
    spec = dict(id=id, task=task, fixture=fixture, inputs=inputs, options=options or {}, seed=seed,
                init=init or {}, chat_template=chat_template)
    return {**spec, "generation_config": generation_config} if generation_config else spec


TEXT_GENERATION = [
    case("gpt2-greedy", "text-generation", "gpt2", "The old lighthouse keeper",
         dict(do_sample=False, max_new_tokens=20)),
    case("gpt2-greedy-new-text", "text-generation", "gpt2", "The old lighthouse keeper",
         dict(do_sample=False, max_new_tokens=20, return_full_text=False)),
    case("gpt2-greedy-no-cleanup", "text-generation", "gpt2", "She opened the door and",
         dict(do_sample=False, max_new_tokens=25, clean_up_tokenization_spaces=False)),
    case("gpt2-repetition-ngram", "text-generation", "gpt2", "In the morning the market",
         dict(do_sample=False, max_new_tokens=25, repetition_penalty=1.3, no_repeat_ngram_size=2)),
    case("gpt2-beam", "text-generation", "gpt2", "The river",
         dict(do_sample=False, num_beams=3, num_return_sequences=2, max_new_tokens=15)),
    case("gpt2-sample-seeded", "text-generation", "gpt2", "Once upon a time",
         dict(do_sample=True, top_k=20, temperature=0.9, max_new_tokens=20, num_return_sequences=2), seed=0),
    case("gpt2-sample-top-p", "text-generation", "gpt2", "The weather today",
         dict(do_sample=True, top_p=0.8, top_k=0, max_new_tokens=20), seed=7),
    case("gpt2-defaults-seeded", "text-generation", "gpt2", "A small village", {}, seed=3),
    case("gpt2-max-length", "text-generation", "gpt2", "The old lighthouse keeper",
         dict(do_sample=False, max_length=18)),
    case("gpt2-prompts-list", "text-generation", "gpt2", ["The river", "She opened the door and went outside"],
         dict(do_sample=False, max_new_tokens=12)),
    case("gpt2-return-tensors", "text-generation", "gpt2", "The river",
         dict(do_sample=False, max_new_tokens=8, return_tensors=True)),
    case("llama-greedy", "text-generation", "llama", "The old lighthouse keeper",
         dict(do_sample=False, max_new_tokens=20)),
    case("llama-sample-seeded", "text-generation", "llama", "Once upon a time",
         dict(do_sample=True, top_p=0.9, temperature=0.8, max_new_tokens=20, num_return_sequences=3), seed=1),
    case("llama-beam", "text-generation", "llama", "The river",
         dict(do_sample=False, num_beams=4, max_new_tokens=12, length_penalty=0.5)),
    case("llama-defaults-seeded", "text-generation", "llama", "A small village", dict(max_new_tokens=30), seed=5),
    case("llama-chat", "text-generation", "llama", [{"role": "user", "content": "Tell me about the river."}],
         dict(do_sample=False, max_new_tokens=15), chat_template=CHATML_TEMPLATE),
    case("llama-chat-new-text", "text-generation", "llama",
         [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Where is the market?"}],
         dict(do_sample=False, max_new_tokens=15, return_full_text=False), chat_template=CHATML_TEMPLATE),
    case("llama-chat-prefill", "text-generation", "llama",
         [{"role": "user", "content": "Name a town."}, {"role": "assistant", "content": "The town of"}],
         dict(do_sample=False, max_new_tokens=10), chat_template=CHATML_TEMPLATE),
    case("llama-chats-list", "text-generation", "llama",
         [[{"role": "user", "content": "Tell me about the river."}],
          [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Where is the market?"}]],
         dict(do_sample=False, max_new_tokens=8), chat_template=CHATML_TEMPLATE),
    case("llama-chat-special-tokens", "text-generation", "llama", [{"role": "user", "content": "Name a town."}],
         dict(do_sample=False, max_new_tokens=12, return_full_text=False, skip_special_tokens=False),
         chat_template=CHATML_TEMPLATE),
    case("llama-pipeline-defaults", "text-generation", "llama", "The old lighthouse keeper", {}, seed=6),
    case("llama-min-p-seeded", "text-generation", "llama", "Once upon a time",
         dict(do_sample=True, min_p=0.05, top_k=0, max_new_tokens=15), seed=2),
    case("gpt2-sample-list-seeded", "text-generation", "gpt2", ["Once upon a time", "The weather today is"],
         dict(do_sample=True, max_new_tokens=12), seed=8),
    case("gpt2-prefix", "text-generation", "gpt2", "the river",
         dict(do_sample=False, max_new_tokens=10, prefix="Once upon a time. ")),
    case("gpt2-hole", "text-generation", "gpt2", LONG,
         dict(do_sample=False, max_new_tokens=20, handle_long_generation="hole", return_full_text=False)),
    case("gpt2-bad-words", "text-generation", "gpt2", "The river",
         dict(do_sample=False, max_new_tokens=12, bad_words_ids=[[342], [72, 317]])),
    case("gpt2-min-new-tokens", "text-generation", "gpt2", "The old lighthouse keeper",
         dict(do_sample=False, max_new_tokens=20, min_new_tokens=15)),
    case("gpt2-return-text", "text-generation", "gpt2", "The river",
         dict(do_sample=False, max_new_tokens=8, return_text=True)),
    # The model's generation_config sets temperature 0.3 and top_p 0.8: the pipeline's temperature=0.7
    # wins over the model's (it is not transformers' default 1.0), the model's top_p is used (the
    # pipeline's is the default). Text differs with temperature 0.3 and with top_p 1.0 (the test checks).
    case("llama-model-temperature-top-p", "text-generation", "llama", "Marie Curie was a",
         dict(max_new_tokens=20), seed=0, generation_config={"temperature": 0.3, "top_p": 0.8}),
    case("llama-model-temperature-top-p-list", "text-generation", "llama", ["Dogs are loyal", "Marie Curie was a"],
         dict(max_new_tokens=15, num_return_sequences=2), seed=2,
         generation_config={"temperature": 0.3, "top_p": 0.8}),
]

SUMMARIZATION = [
    case("bart-max-min-length", "summarization", "bart-cnn", ARTICLE, dict(max_length=50, min_length=20)),
    case("bart-defaults", "summarization", "bart-cnn", ARTICLE),
    case("bart-max-length-below-task-min", "summarization", "bart-cnn", ARTICLE_2, dict(max_length=30)),
    case("bart-list", "summarization", "bart-cnn", [ARTICLE, ARTICLE_2], dict(max_length=30, min_length=10)),
    case("bart-greedy", "summarization", "bart-cnn", ARTICLE, dict(num_beams=1, max_length=25, min_length=5)),
    case("bart-sample-seeded", "summarization", "bart-cnn", ARTICLE_2,
         dict(num_beams=1, do_sample=True, top_k=30, max_length=25, min_length=5), seed=11),
    case("bart-num-return-sequences", "summarization", "bart-cnn", ARTICLE,
         dict(num_return_sequences=2, max_length=20, min_length=5)),
    case("bart-max-new-tokens", "summarization", "bart-cnn", SHORT, dict(max_new_tokens=15, min_length=5)),
    case("bart-return-tensors", "summarization", "bart-cnn", SHORT,
         dict(max_length=15, min_length=5, return_tensors=True)),
    case("bart-cleanup", "summarization", "bart-cnn", SHORT,
         dict(max_length=20, min_length=5, clean_up_tokenization_spaces=True)),
    # T5's task_specific_params["summarization"]: prefix "summarize: ", 4 beams, min_length 30,
    # max_length 200, length_penalty 2, no_repeat_ngram 3; its generation_config has none of them
    # (bart-cnn's generation_config equals its task params, so it cannot tell whether they are applied).
    case("t5-summarize-defaults", "summarization", "t5", ARTICLE),
    case("t5-summarize-max-length", "summarization", "t5", ARTICLE_2, dict(max_length=40)),
    case("t5-summarize-max-length-below-task-min", "summarization", "t5", SHORT, dict(max_length=20)),
    case("t5-summarize-list", "summarization", "t5", [SHORT, ARTICLE_2], dict(max_length=30, min_length=10)),
]

TEXT2TEXT = [
    case("t5-defaults", "text2text-generation", "t5",
         "question: Where is the lighthouse? context: " + SHORT),
    case("t5-max-new-tokens", "text2text-generation", "t5", "summarize: " + ARTICLE_2, dict(max_new_tokens=15)),
    case("t5-greedy", "text2text-generation", "t5", "summarize: " + ARTICLE, dict(num_beams=1, max_length=12)),
    case("t5-sample-seeded", "text2text-generation", "t5", "summarize: " + ARTICLE,
         dict(num_beams=1, do_sample=True, max_length=15), seed=2),
    case("t5-list", "text2text-generation", "t5", ["summarize: " + SHORT, "summarize: " + ARTICLE_2],
         dict(max_length=12)),
    case("t5-beams-return-two", "text2text-generation", "t5", "summarize: " + SHORT,
         dict(num_beams=3, num_return_sequences=2, max_length=12)),
    case("t5-cleanup", "text2text-generation", "t5", "summarize: " + SHORT,
         dict(max_length=16, clean_up_tokenization_spaces=True)),
]

TRANSLATION = [
    case("marian-max-length", "translation_en_to_fr", "marian-en-fr", SHORT, dict(max_length=20)),
    case("marian-defaults", "translation_en_to_fr", "marian-en-fr", "The river runs to the sea."),
    case("marian-greedy", "translation_en_to_fr", "marian-en-fr", SHORT, dict(num_beams=1, max_length=20)),
    case("marian-sample-seeded", "translation_en_to_fr", "marian-en-fr", SHORT,
         dict(num_beams=1, do_sample=True, max_new_tokens=15), seed=4),
    case("marian-list", "translation_en_to_fr", "marian-en-fr", [SHORT, "The river runs to the sea."],
         dict(max_length=16)),
    case("marian-sample-list-seeded", "translation_en_to_fr", "marian-en-fr", [SHORT, "The river runs to the sea."],
         dict(num_beams=1, do_sample=True, max_length=12), seed=12),
    case("t5-en-fr", "translation_en_to_fr", "t5", SHORT, dict(max_length=20)),
    case("t5-en-de-greedy", "translation_en_to_de", "t5", SHORT, dict(num_beams=1, max_new_tokens=15)),
    case("t5-en-fr-list", "translation_en_to_fr", "t5", [SHORT, "The river runs to the sea."], dict(max_length=14)),
    case("m2m100-en-fr", "translation", "m2m100", SHORT, dict(src_lang="en", tgt_lang="fr", max_length=20)),
    case("m2m100-en-de", "translation", "m2m100", SHORT, dict(src_lang="en", tgt_lang="de", max_length=20)),
    case("m2m100-task-name", "translation_en_to_de", "m2m100", "The river runs to the sea.",
         dict(max_length=16, num_beams=2)),
    case("m2m100-greedy-list", "translation", "m2m100", [SHORT, "The river runs to the sea."],
         dict(src_lang="en", tgt_lang="fr", num_beams=1, max_length=14)),
    case("m2m100-sample-seeded", "translation", "m2m100", SHORT,
         dict(src_lang="en", tgt_lang="fr", num_beams=1, do_sample=True, max_new_tokens=12), seed=9),
    # No num_beams: the pipeline's 4, not the fixture generation_config's 5. On these texts 4 and 5
    # beams give different text (the test checks), unlike m2m100-en-fr and m2m100-en-de.
    case("m2m100-default-beams-en-fr", "translation", "m2m100", corpus_line(1), dict(src_lang="en", tgt_lang="fr")),
    case("m2m100-default-beams-en-de", "translation", "m2m100", corpus_line(5), dict(src_lang="en", tgt_lang="de")),
    case("m2m100-default-beams-en-de-max-length", "translation", "m2m100", corpus_line(2),
         dict(src_lang="en", tgt_lang="de", max_length=20)),
    case("m2m100-default-beams-list", "translation", "m2m100", [corpus_line(4), corpus_line(10)],
         dict(src_lang="en", tgt_lang="fr", max_length=20)),
    case("m2m100-default-beams-task-name", "translation_en_to_de", "m2m100", corpus_line(0), dict(max_length=20)),
]

CASES = TEXT_GENERATION + SUMMARIZATION + TEXT2TEXT + TRANSLATION


def sets_max_length(spec: dict) -> bool:
    """Whether the caller or the fixture's task_specific_params choose a max_length for this case."""
    if "max_length" in spec["options"]:
        return True
    config = json.loads((FIXTURES / spec["fixture"] / "config.json").read_text(encoding="utf-8"))
    return "max_length" in ((config.get("task_specific_params") or {}).get(spec["task"]) or {})


def reference_options(spec: dict) -> dict:
    """What we add to the 4.57.6 call: no default max_new_tokens=256 where nopipe honours a max_length."""
    if "max_new_tokens" in spec["options"]:
        return {}
    if spec["task"] == "text-generation" and not sets_max_length(spec):
        return {}
    return {"max_new_tokens": None}


@contextmanager
def no_eval_layerdrop_draws():
    """4.57.6 M2M100 calls `torch.rand([])` per layer per forward even in eval mode; make that call
    return a constant (the value only matters in training) so it does not consume the random stream."""
    real_rand = torch.rand

    def rand(*args, **kwargs):
        if args == ([],) and not kwargs:
            return torch.zeros([])
        return real_rand(*args, **kwargs)

    torch.rand = rand
    try:
        yield
    finally:
        torch.rand = real_rand


def run(spec: dict, pipelines: dict):
    key = (spec["task"], model_folder(spec, FIXTURES, Path(SCRATCH.name)))
    if key not in pipelines:
        pipelines[key] = pipeline(spec["task"], model=str(key[1]), device="cpu")
    pipe = pipelines[key]
    pipe.tokenizer.chat_template = spec["chat_template"]
    options = {**spec["options"], **reference_options(spec)}
    if spec["seed"] is not None:
        set_seed(spec["seed"])
    with no_eval_layerdrop_draws():
        return pipe(spec["inputs"], **options)


if __name__ == "__main__":
    make_goldens(CASES, run, OUTPUT, recorded=lambda spec: {"reference_options": reference_options(spec)})
