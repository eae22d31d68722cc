"""int8 word embeddings (core.int8_embedding): every architecture's word table is replaced, shared
tables stay shared, scaled tables keep their scale, and a lookup is within half a step of float32."""

import pytest
import torch
from torch import nn
from transformers import AutoModel, AutoTokenizer

from core.device import place_model
from core.int8_embedding import Int8Embedding, quantize_rows, quantize_word_embeddings
from tests.paths import FIXTURES

ARCHITECTURES = ["gpt2", "llama", "distilbert-sst2", "bert-ner", "roberta-emotion", "bart-cnn", "marian-en-fr",
                 "m2m100", "t5"]


def lookup_ids(tokenizer, batch=2):
    """Token ids of a small batch, read through a transposed (non-contiguous) view as some models do."""
    ids = torch.tensor([tokenizer("The weather in Paris is mild today.")["input_ids"][:6]] * batch)
    return ids.t().contiguous().t()


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_each_word_table_is_int8_and_answers_within_half_a_step(name):
    float_model = AutoModel.from_pretrained(FIXTURES / name).eval()
    expected_table = float_model.get_input_embeddings()
    tokenizer = AutoTokenizer.from_pretrained(FIXTURES / name)
    ids = lookup_ids(tokenizer)
    expected = expected_table(ids)
    model = quantize_word_embeddings(AutoModel.from_pretrained(FIXTURES / name).eval())
    table = model.get_input_embeddings()
    assert isinstance(table, Int8Embedding) and table.rows.dtype == torch.int8
    assert not any(type(module) is nn.Embedding and module.weight.shape == expected_table.weight.shape
                   for module in model.modules())  # no float copy of the word table left behind
    got = table(ids)
    assert got.shape == expected.shape and got.dtype == torch.float32
    half_step = (table.scales.index_select(0, ids.reshape(-1)) / 2 * table.output_scale).view(*ids.shape, 1)
    assert bool(((got - expected).abs() <= half_step + 1e-6).all())


def test_encoder_and_decoder_tables_of_a_seq2seq_model_stay_one_table():
    model = quantize_word_embeddings(AutoModel.from_pretrained(FIXTURES / "bart-cnn").eval())
    tables = {model.encoder.embed_tokens.rows.data_ptr(), model.decoder.embed_tokens.rows.data_ptr(),
              model.shared.rows.data_ptr()}
    assert len(tables) == 1


def test_a_scaled_table_keeps_its_scale():
    float_model = AutoModel.from_pretrained(FIXTURES / "m2m100").eval()
    scale = float(float_model.encoder.embed_tokens.embed_scale)
    assert scale != 1.0  # the fixture scales its embeddings, so the test can fail
    model = quantize_word_embeddings(AutoModel.from_pretrained(FIXTURES / "m2m100").eval())
    assert model.encoder.embed_tokens.output_scale == scale


def test_position_tables_and_tables_with_max_norm_stay_float():
    model = quantize_word_embeddings(AutoModel.from_pretrained(FIXTURES / "bart-cnn").eval())
    assert type(model.encoder.embed_positions).__name__ == "BartLearnedPositionalEmbedding"
    table = nn.Embedding(10, 4, max_norm=1.0)
    holder = nn.Module()
    holder.table = table
    holder.get_input_embeddings = lambda: holder.table
    assert quantize_word_embeddings(holder).table is table


def test_rows_of_zeros_and_extreme_values_quantize_without_nan():
    weight = torch.tensor([[0.0, 0.0, 0.0], [1e30, -1e30, 3.0], [-2.0, 1.0, 0.5]])
    rows, scales = quantize_rows(weight)
    assert torch.isfinite(scales).all() and (rows[0] == 0).all()
    assert rows[2].tolist() == [-127, 64, 32]


def test_an_int8_runner_model_has_int8_word_embeddings_and_the_same_labels():
    name = "distilbert-sst2"
    from transformers import AutoModelForSequenceClassification
    tokenizer = AutoTokenizer.from_pretrained(FIXTURES / name)
    texts = ["a wonderful, moving film", "dull and far too long", "it was fine", "the worst acting I have seen"]
    inputs = tokenizer(texts, return_tensors="pt", padding=True)
    reference = AutoModelForSequenceClassification.from_pretrained(FIXTURES / name).eval()(**inputs).logits
    model, _ = place_model(AutoModelForSequenceClassification.from_pretrained(FIXTURES / name), "cpu", "int8")
    assert isinstance(model.get_input_embeddings(), Int8Embedding)
    assert model(**inputs).logits.argmax(-1).tolist() == reference.argmax(-1).tolist()
