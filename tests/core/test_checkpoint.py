"""A checkpoint that would answer wrong without a word is refused at load time, with a message that
names what is wrong and the fix: another task's head, a tokenizer without vocabulary, NaN weights,
token ids past the embedding, a label map with gaps, a damaged or misshapen weights file."""

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import (
    AutoModelForCausalLM,
    AutoModelForQuestionAnswering,
    AutoModelForSeq2SeqLM,
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
    AutoTokenizer,
)

from core.checkpoint import (
    check_input_ids,
    check_token_ids,
    looks_like_entity_tags,
    nonfinite_tensors,
    safetensors_problem,
)
from core.loading import ModelLoadError, load_model, load_tokenizer
from tests.paths import FIXTURES


def copy_fixture(name, tmp_path, **config_changes):
    """A copy of a fixture model whose config.json has `config_changes` (None removes a key)."""
    folder = tmp_path / name
    shutil.copytree(FIXTURES / name, folder)
    config = json.loads((folder / "config.json").read_text())
    for key, value in config_changes.items():
        if value is None:
            config.pop(key, None)
        else:
            config[key] = value
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def load(folder, head, **options):
    model, _ = load_model(folder, head, device="cpu", dtype="float32", **options)
    return model


# -- a checkpoint trained for another task -------------------------------------------------------

def test_a_star_rating_classifier_is_refused_for_ner_naming_what_it_was_trained_for():
    """Its classifier has the same parameter names as an NER head, so transformers loads it silently."""
    with pytest.raises(ValueError, match=r"trained for text-classification \(architecture "
                                         r"BertForSequenceClassification\) \(labels: 1 star, 2 stars.*\) and not "
                                         r"fine-tuned for this task \(token-classification\).*allow_other_head=True"):
        load(FIXTURES / "bert-stars", AutoModelForTokenClassification)


@pytest.mark.parametrize("fixture", ["bert-ner", "roberta-ner"])
def test_an_ner_checkpoint_is_refused_for_classification(fixture):
    with pytest.raises(ValueError, match=r"trained for token-classification .*labels: O, B-MISC.*not fine-tuned "
                                         r"for this task \(text-classification\)"):
        load(FIXTURES / fixture, AutoModelForSequenceClassification)


def test_a_seq2seq_checkpoint_is_refused_for_text_generation():
    with pytest.raises(ValueError, match=r"trained for summarization/translation.*not fine-tuned for this task "
                                         r"\(text-generation\)"):
        load(FIXTURES / "bart-cnn", AutoModelForCausalLM)


def test_the_override_loads_another_tasks_head_when_its_weights_fit():
    model = load(FIXTURES / "bert-stars", AutoModelForTokenClassification, allow_other_head=True)
    assert type(model).__name__ == "BertForTokenClassification" and model.config.num_labels == 5


def test_the_override_does_not_accept_missing_weights():
    """roberta's classification and NER heads have different parameters: never random weights."""
    with pytest.raises(ValueError, match="no trained weights for RobertaForSequenceClassification"):
        load(FIXTURES / "roberta-ner", AutoModelForSequenceClassification, allow_other_head=True)


@pytest.mark.parametrize("fixture, head", [
    ("distilbert-sst2", AutoModelForSequenceClassification), ("bert-multilabel", AutoModelForSequenceClassification),
    ("roberta-emotion", AutoModelForSequenceClassification), ("bert-ner", AutoModelForTokenClassification),
    ("roberta-ner", AutoModelForTokenClassification), ("distilbert-squad", AutoModelForQuestionAnswering),
    ("roberta-squad", AutoModelForQuestionAnswering), ("gpt2", AutoModelForCausalLM), ("llama", AutoModelForCausalLM),
    ("bart-cnn", AutoModelForSeq2SeqLM), ("t5", AutoModelForSeq2SeqLM), ("marian-en-fr", AutoModelForSeq2SeqLM),
    ("m2m100", AutoModelForSeq2SeqLM),
])
def test_every_fixture_loads_for_the_task_it_was_trained_for(fixture, head):
    model = load(FIXTURES / fixture, head)
    check_token_ids(model, load_tokenizer(FIXTURES / fixture))


@pytest.mark.parametrize("architectures", [["BertModel"], None])
def test_a_base_checkpoint_whose_weights_hold_the_head_still_loads(tmp_path, architectures):
    """config.architectures naming the base model (or nothing) says nothing about the task."""
    folder = copy_fixture("bert-stars", tmp_path, architectures=architectures)
    assert load(folder, AutoModelForTokenClassification).config.num_labels == 5
    assert load(folder, AutoModelForSequenceClassification).config.num_labels == 5


def test_a_base_checkpoint_with_entity_tags_is_refused_for_classification(tmp_path):
    tags = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    folder = copy_fixture("bert-stars", tmp_path, architectures=None, id2label=dict(enumerate(tags)),
                          label2id={tag: index for index, tag in enumerate(tags)})
    with pytest.raises(ValueError, match="entity tags as labels.*trained for token-classification"):
        load(folder, AutoModelForSequenceClassification)
    assert load(folder, AutoModelForSequenceClassification, allow_other_head=True).config.num_labels == 5
    assert load(folder, AutoModelForTokenClassification).config.id2label[1] == "B-PER"


@pytest.mark.parametrize("labels, expected", [
    (["O", "B-PER", "I-PER"], True), (["B-LOC", "I-LOC", "E-LOC", "S-LOC", "O"], True),
    (["1 star", "2 stars"], False), (["O", "positive"], False), (["NOUN", "VERB"], False), ([], False),
])
def test_entity_tag_label_maps(labels, expected):
    assert looks_like_entity_tags(labels) is expected


# -- the tokenizer -----------------------------------------------------------------------------------

def test_a_tokenizer_config_without_vocabulary_is_refused(tmp_path):
    """transformers 5 builds a 5-token tokenizer from it: every word would be [UNK]."""
    folder = tmp_path / "no-vocabulary"
    folder.mkdir()
    for name in ("config.json", "model.safetensors", "tokenizer_config.json"):
        shutil.copy(FIXTURES / "distilbert-sst2" / name, folder / name)
    with pytest.raises(ModelLoadError, match=rf"tokenizer in '{folder}' has only its 5 special tokens and no "
                                             r"vocabulary.*\[UNK\].*save_pretrained"):
        load_tokenizer(folder)


def test_a_tokenizer_far_smaller_than_the_embedding_is_not_the_models(tmp_path):
    folder = tmp_path / "no-vocabulary"
    folder.mkdir()
    shutil.copy(FIXTURES / "distilbert-sst2" / "tokenizer_config.json", folder)
    five_tokens = AutoTokenizer.from_pretrained(folder)
    with pytest.raises(ValueError, match="tokenizer has 5 tokens but the model has 500 embedding rows"):
        check_token_ids(load(FIXTURES / "distilbert-sst2", AutoModelForSequenceClassification), five_tokens)


def test_a_broken_config_is_reported_as_a_broken_config_not_a_missing_tokenizer(tmp_path):
    folder = copy_fixture("distilbert-sst2", tmp_path)
    (folder / "config.json").write_text('{"model_type": "distilbert", ')
    for loader in (lambda: load_tokenizer(folder), lambda: load(folder, AutoModelForSequenceClassification)):
        with pytest.raises(ModelLoadError, match=r"config of .* is broken: .*config.json is not valid JSON"):
            loader()


@pytest.mark.parametrize("changes, expected", [
    ({"dim": "abc"}, r"the config of '.*' cannot be used: Validation error for field 'dim': TypeError: Field 'dim'"),
    ({"id2label": {"a": "x"}}, r"the config of '.*' cannot be used: invalid literal for int\(\)"),
    ({"model_type": "nonsense"}, r"the config of '.*' cannot be used: .*model type `nonsense`"),
    ({"n_heads": 5}, r"the model of '.*' could not be built from its config \(config.n_heads 5 must divide"),
    ({"dim": -5}, r"the model of '.*' could not be built from its config \(Trying to create tensor with negative"),
])
def test_a_config_with_impossible_values_gives_one_line_naming_the_folder(tmp_path, changes, expected):
    folder = copy_fixture("distilbert-sst2", tmp_path, **changes)
    with pytest.raises(ValueError, match=expected) as error:
        load(folder, AutoModelForSequenceClassification)
    assert "\n" not in str(error.value)


def test_a_config_that_is_not_a_json_object_is_broken(tmp_path):
    folder = copy_fixture("distilbert-sst2", tmp_path)
    (folder / "config.json").write_text("[1, 2]")
    with pytest.raises(ModelLoadError, match="config.json holds a JSON list, not an object"):
        load_tokenizer(folder)


def test_tokens_past_the_embedding_are_refused_naming_the_first(tmp_path):
    tokenizer = load_tokenizer(FIXTURES / "distilbert-sst2")
    tokenizer.add_tokens(["<extra-a>", "<extra-b>"])  # ids 500 and 501; the model has 500 rows
    model = load(FIXTURES / "distilbert-sst2", AutoModelForSequenceClassification)
    with pytest.raises(ValueError, match=r"2 token\(s\) with ids past the model's 500 embedding rows "
                                         r"\(first: '<extra-a>' = id 500\).*tokenizer="):
        check_token_ids(model, tokenizer)


def test_a_pad_token_past_the_embedding_is_refused_at_load():
    tokenizer = load_tokenizer(FIXTURES / "gpt2")
    tokenizer.add_special_tokens({"pad_token": "<pad>"})  # id 700; the tokenizer inserts it itself
    with pytest.raises(ValueError, match=r"first: '<pad>' = id 700"):
        check_token_ids(load(FIXTURES / "gpt2", AutoModelForCausalLM), tokenizer)


def test_a_special_token_only_a_text_can_contain_is_refused_in_that_text():
    """Like BART-CNN's <mask> (id 50264, embedding of 50264 rows): the model loads, and a text that
    writes the token is refused by name instead of failing inside torch."""
    tokenizer = load_tokenizer(FIXTURES / "gpt2")
    tokenizer.add_special_tokens({"additional_special_tokens": ["<mask>"]})
    rows = check_token_ids(load(FIXTURES / "gpt2", AutoModelForCausalLM), tokenizer)
    assert rows == 700
    texts = ["a plain text", "a text with a <mask> in it"]
    ids = tokenizer(texts)["input_ids"]
    with pytest.raises(ValueError, match=r"inputs\[1\] contains '<mask>' \(token id 700\), a token this model has no "
                                         r"embedding for \(ids 0..699\); remove it from the text"):
        check_input_ids(ids, rows, tokenizer)
    check_input_ids(ids[:1], rows, tokenizer)


@pytest.mark.parametrize("fixture, source, field", [
    ("gpt2", "config", "eos_token_id"), ("bart-cnn", "generation_config", "forced_bos_token_id"),
    ("t5", "generation_config", "decoder_start_token_id"), ("marian-en-fr", "config", "decoder_start_token_id"),
])
def test_special_ids_past_the_embedding_are_refused_naming_the_field(fixture, source, field):
    head = AutoModelForCausalLM if fixture == "gpt2" else AutoModelForSeq2SeqLM
    model = load(FIXTURES / fixture, head)
    setattr(getattr(model, source), field, 10_000)
    with pytest.raises(ValueError, match=rf"{source}.{field} = 10000 is not a token id of this model.*"
                                         rf"Fix {field} in the model's {source}.json"):
        check_token_ids(model, load_tokenizer(FIXTURES / fixture))


# -- the label map and the weights -------------------------------------------------------------------

def test_a_gap_in_the_label_map_is_refused_at_load(tmp_path):
    labels = {0: "a", 1: "b", 3: "d", 4: "e", 5: "f"}  # five labels for five rows, but no id 2
    folder = copy_fixture("bert-stars", tmp_path, id2label=labels,
                          label2id={label: index for index, label in labels.items()})
    with pytest.raises(ValueError, match=r"id2label.*has ids \[0, 1, 3, 4, 5\] with no label for id 2"):
        load(folder, AutoModelForSequenceClassification)


def test_config_and_weights_of_another_shape_name_the_tensor(tmp_path):
    """transformers raises with a table on stderr, or with ignore_mismatched_sizes fills it randomly."""
    folder = copy_fixture("distilbert-sst2", tmp_path, id2label={0: "a", 1: "b", 2: "c"},
                          label2id={"a": 0, "b": 1, "c": 2})
    with pytest.raises(ValueError, match=r"classifier.bias has shape \(2,\) in the checkpoint but "
                                         r"DistilBertForSequenceClassification built from config.json needs \(3,\)"
                       ) as error:
        load(folder, AutoModelForSequenceClassification)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_weights_with_nan_or_inf_are_refused_naming_the_tensor(tmp_path, value):
    folder = copy_fixture("distilbert-sst2", tmp_path)
    weights = load_file(folder / "model.safetensors")
    name = "distilbert.transformer.layer.0.ffn.lin1.weight"
    weights[name][3, 4] = value
    save_file(weights, folder / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(ValueError, match=rf"hold NaN or infinite values in {name}: .*damaged"):
        load(folder, AutoModelForSequenceClassification)


@pytest.mark.parametrize("keep", [0.5, 0.999, 4])
def test_a_truncated_weights_file_is_named(tmp_path, keep):
    folder = copy_fixture("distilbert-sst2", tmp_path)
    path = folder / "model.safetensors"
    data = path.read_bytes()
    path.write_bytes(data[:int(len(data) * keep)] if keep < 1 else data[:keep])
    with pytest.raises(ModelLoadError, match=rf"the weights file {path} is damaged: .*Download or save it again"):
        load(folder, AutoModelForSequenceClassification)


def test_a_truncated_pytorch_weights_file_is_named(tmp_path):
    folder = copy_fixture("distilbert-sst2", tmp_path)
    weights = load_file(folder / "model.safetensors")
    (folder / "model.safetensors").unlink()
    path = folder / "pytorch_model.bin"
    torch.save(weights, path)
    assert load(folder, AutoModelForSequenceClassification).config.num_labels == 2  # whole, it loads
    path.write_bytes(path.read_bytes()[:path.stat().st_size // 2])
    with pytest.raises(ModelLoadError, match=rf"the weights file {path} is damaged \(torch cannot read it: "):
        load(folder, AutoModelForSequenceClassification)


def test_safetensors_layout_check(tmp_path):
    path = tmp_path / "model.safetensors"
    save_file({"a": torch.zeros(3, 4)}, path)
    assert safetensors_problem(path) is None
    path.write_bytes(path.read_bytes()[:-1])
    assert "truncated: its tensors need" in safetensors_problem(path)
    path.write_bytes((20).to_bytes(8, "little") + b"{not json at all!!!}")
    assert safetensors_problem(path) == "its header is not valid JSON"


def test_huge_finite_weights_are_not_mistaken_for_inf():
    """Their float32 sum overflows; the element-wise check then clears them."""
    model = torch.nn.Linear(2, 1)
    with torch.no_grad():
        model.weight.fill_(3e38)
    assert nonfinite_tensors(model) == []
    with torch.no_grad():
        model.bias.fill_(float("nan"))
    assert nonfinite_tensors(model) == ["bias"]


def test_a_model_without_embeddings_is_not_checked():
    """Any torch module may be given to a runner; with no embedding there is nothing to check against."""
    assert check_token_ids(torch.nn.Linear(2, 2), load_tokenizer(FIXTURES / "gpt2")) is None


@pytest.mark.parametrize("fixture", ["gpt2", "llama", "marian-en-fr", "t5"])
def test_an_int8_model_counts_the_same_readable_ids_as_float32(fixture):
    """A dynamically quantized head keeps its weight behind a method: the id check must still read its size."""
    import tasks

    task = "text-generation" if fixture in ("gpt2", "llama") else "text2text-generation"
    full = tasks.load(task, model=str(FIXTURES / fixture))
    quantized = tasks.load(task, model=str(FIXTURES / fixture), dtype="int8")
    assert quantized.embedding_rows == full.embedding_rows is not None
    assert quantized("Hello there", max_new_tokens=3)[0]["generated_text"] is not None
