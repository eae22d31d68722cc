"""TokenClassifier gives what transformers' `token-classification` pipeline gives, and groups words by word ids.

The reference is the pipeline of the installed transformers 5 (same logic as 4.57.6 without the
removed `grouped_entities`/`ignore_subwords`). Labels, words, start/end and index must be equal,
scores within 1e-5. `ignore_labels=[]` is used a lot: it keeps the "O" groups too, so every token
or word of the text is compared, not only the few the toy models call entities.

The one intended difference: words come from `word_ids()`. On WordPiece (bert-ner) that is the
pipeline's grouping, so every strategy matches; on byte-level BPE (roberta-ner) the pipeline
guesses words from spaces, so "first"/"average"/"max" match only on texts where that guess finds
the same words, and elsewhere our entities never cut a word_ids word while the pipeline's do.
SentencePiece (XLM-R style, "▁" word starts) is tested with the t5 fixture's fast Unigram tokenizer
and a random XLM-R token classifier built at test time: there the pipeline's guess also splits
words at a lone "▁" piece and at unknown characters, and glues the words of an entity together.

The other: on a long text, "first"/"average"/"max" leave out the words a window cuts at its edge
(another window reads them whole), where the pipeline reads the piece as a word of its own ("##gle"
of "Google"). The stride tests compare every entity of the pipeline's that cuts no word.
"""

import re
from functools import partial
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import AutoTokenizer, XLMRobertaConfig, XLMRobertaForTokenClassification, pipeline

from tasks.token_classification import (
    TokenClassifier,
    bio_tag,
    group_bio_entities,
    keep_each_token_once,
    label_word,
    merge_overlapping_entities,
    partial_words,
    split_words,
)
from tests.paths import FIXTURES, corpus_lines
from tests.tasks.references import runner_and_pipeline

pytestmark = pytest.mark.filterwarnings("ignore:Tokenizer does not support real words")  # the pipeline on BPE

LINES = [line for line in corpus_lines() if line.strip()]
# Without punctuation most words stand between spaces, where the pipeline's guess is right on BPE too.
BARE_LINES = [re.sub(r"[^\w\s]", "", line) for line in LINES]
LONG_TEXTS = [" ".join(LINES[first:first + 8]) for first in range(0, 40, 8)]  # 180-290 tokens; models read 128
STRATEGIES = ["none", "simple", "first", "average", "max"]
WORD_STRATEGIES = ["first", "average", "max"]


@pytest.fixture(scope="module")
def loaded():
    """(runner, pipeline) per fixture, loaded once for the module."""
    return runner_and_pipeline("token-classification", TokenClassifier)


def assert_same(ours: list, theirs: list):
    """Same entries in the same order: labels, words, offsets and index equal, scores within 1e-5."""
    def key(entry):
        return (entry.get("entity", entry.get("entity_group")), entry["word"], entry["start"], entry["end"],
                entry.get("index"), sorted(entry))

    assert [key(entry) for entry in ours] == [key(entry) for entry in theirs]
    assert [entry["score"] for entry in ours] == pytest.approx([float(entry["score"]) for entry in theirs], abs=1e-5)


def assert_all_same(ours: list[list], theirs: list[list]):
    assert len(ours) == len(theirs)
    for mine, reference in zip(ours, theirs):
        assert_same(mine, reference)


def word_ids_words(tokenizer, text: str) -> list[tuple[int, int]]:
    """(start, end) characters of each word as the tokenizer's word ids define it."""
    encoding = tokenizer(text)
    spans = {}
    for index, word in enumerate(encoding.word_ids()):
        if word is not None:
            start, end = encoding.token_to_chars(index)
            spans[word] = (min(start, spans.get(word, (start, end))[0]), max(end, spans.get(word, (start, end))[1]))
    return [spans[word] for word in sorted(spans)]


def cuts_a_word_ids_word(entity: dict, words: list[tuple[int, int]]) -> bool:
    """Whether an entity starts or ends inside one of `words` (from `word_ids_words`)."""
    return entity["start"] not in {start for start, _ in words} or entity["end"] not in {end for _, end in words}


def pipeline_word_groups(tokenizer, text: str) -> list[list[int]]:
    """Token indices of each word as the pipeline's `gather_pre_entities` decides them: with a "##"
    prefix, a token whose piece is longer than its characters continues a word (l.482); without one,
    a token continues the word before it unless a space is next to its start (the guess, l.494)."""
    encoding = tokenizer(text, return_offsets_mapping=True, return_special_tokens_mask=True)
    has_prefix = bool(getattr(tokenizer.backend_tokenizer.model, "continuing_subword_prefix", None))
    groups = []
    for index, (start, end) in enumerate(encoding["offset_mapping"]):
        if encoding["special_tokens_mask"][index]:
            continue
        if has_prefix:
            continues = len(encoding.tokens()[index]) != end - start
        else:
            continues = start > 0 and " " not in text[start - 1:start + 1]
        if groups and continues and encoding["input_ids"][index] != tokenizer.unk_token_id:
            groups[-1].append(index)
        else:
            groups.append([index])
    return groups


def word_id_groups(tokenizer, text: str) -> list[list[int]]:
    encoding = tokenizer(text)
    groups, last = [], None
    for index, word in enumerate(encoding.word_ids()):
        if word is None:
            continue
        if groups and word == last:
            groups[-1].append(index)
        else:
            groups.append([index])
        last = word
    return groups


# --- parity with the pipeline ------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["bert-ner", "roberta-ner"])
@pytest.mark.parametrize("strategy", ["none", "simple"])
@pytest.mark.parametrize("ignore_labels", [None, []], ids=["ignore-O", "keep-all"])
def test_token_strategies_match_the_pipeline_on_every_model(loaded, name, strategy, ignore_labels):
    runner, reference = loaded(name)
    options = dict(aggregation_strategy=strategy, ignore_labels=ignore_labels)
    assert_all_same(runner(LINES, **options), reference(LINES, **options))


@pytest.mark.parametrize("strategy", WORD_STRATEGIES)
@pytest.mark.parametrize("ignore_labels", [None, []], ids=["ignore-O", "keep-all"])
def test_word_strategies_match_the_pipeline_on_wordpiece(loaded, strategy, ignore_labels):
    runner, reference = loaded("bert-ner")
    options = dict(aggregation_strategy=strategy, ignore_labels=ignore_labels)
    assert_all_same(runner(LINES, **options), reference(LINES, **options))


def test_on_wordpiece_the_pipelines_words_are_the_word_ids_words(loaded):
    runner, _ = loaded("bert-ner")
    for text in LINES + ["Émile Zola lived in Besançon, naïvely."]:
        assert pipeline_word_groups(runner.tokenizer, text) == word_id_groups(runner.tokenizer, text)


def test_ignore_labels_drops_the_named_groups(loaded):
    runner, reference = loaded("roberta-ner")
    options = dict(aggregation_strategy="simple", ignore_labels=["O", "LOC"])
    ours = runner(LINES, **options)
    assert not any(entity["entity_group"] in ("O", "LOC") for entities in ours for entity in entities)
    assert_all_same(ours, reference(LINES, **options))


def test_single_text_gives_a_list_of_entities(loaded):
    runner, reference = loaded("roberta-ner")
    assert_same(runner(LINES[3], aggregation_strategy="simple"), reference(LINES[3], aggregation_strategy="simple"))


# --- byte-level BPE: word ids instead of the pipeline's guess -----------------------------------------------

@pytest.mark.parametrize("strategy", WORD_STRATEGIES)
def test_bpe_matches_the_pipeline_where_its_guess_finds_the_word_ids_words(loaded, strategy):
    runner, reference = loaded("roberta-ner")
    agree = [text for text in LINES + BARE_LINES
             if pipeline_word_groups(runner.tokenizer, text) == word_id_groups(runner.tokenizer, text)]
    assert len(agree) >= 40  # most texts without punctuation, and a few with
    options = dict(aggregation_strategy=strategy, ignore_labels=[])
    assert_all_same(runner(agree, **options), reference(agree, **options))


@pytest.mark.parametrize("strategy", WORD_STRATEGIES)
def test_bpe_entities_never_cut_a_word_ids_word(loaded, strategy):
    runner, reference = loaded("roberta-ner")
    texts = LINES + ["Émile Zola lived in Besançon, naïvely."]
    pipeline_cuts = 0
    for text, ours, theirs in zip(texts, runner(texts, aggregation_strategy=strategy, ignore_labels=[]),
                                  reference(texts, aggregation_strategy=strategy, ignore_labels=[])):
        words = word_ids_words(runner.tokenizer, text)
        starts, ends = {start for start, _ in words}, {end for _, end in words}
        assert all(entity["start"] in starts and entity["end"] in ends for entity in ours), text
        pipeline_cuts += any(entity["start"] not in starts or entity["end"] not in ends for entity in theirs)
    assert pipeline_cuts >= 1  # the pipeline's guess splits "Émile" into a byte token and the rest


def test_bpe_words_with_non_ascii_letters_read_right(loaded):
    runner, reference = loaded("roberta-ner")
    text = "Émile Zola lived in Besançon."
    assert word_id_groups(runner.tokenizer, text) != pipeline_word_groups(runner.tokenizer, text)
    ours = runner(text, aggregation_strategy="first", ignore_labels=[])
    theirs = reference(text, aggregation_strategy="first", ignore_labels=[])
    assert ours[0]["word"].startswith("Émile") and ours[0]["start"] == 0
    assert "\ufffd" in theirs[0]["word"]  # the pipeline's two "words" of the "É" bytes each decode to U+FFFD
    assert "".join(entity["word"] for entity in ours) == text  # byte-level words carry their leading space


def test_split_words_follows_word_ids(loaded):
    runner, _ = loaded("roberta-ner")
    window = runner.preprocess(["Paris. Émile"])[0]
    entries = [{"word_id": word} for word in window.encoding.word_ids if word is not None]
    assert [len(word) for word in split_words(entries)] == [len(group) for group in
                                                            word_id_groups(runner.tokenizer, "Paris. Émile")]


# --- SentencePiece (XLM-R style): word ids instead of the pipeline's guess -------------------------------------

CONLL_LABELS = ["O", "B-MISC", "I-MISC", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC"]  # as bert-ner's
# Accents the 500-piece vocabulary does not know ("ç", "ï", "ã", "è" are <unk>), apostrophes, hyphens,
# digits, and a tab and runs of spaces between words.
SENTENCEPIECE_TEXTS = LINES + ["Émile Zola lived in Besançon, naïvely.",
                               "O'Neil flew from São Paulo to New-York on 3 May 2021.",
                               "Zürich  and\tGenève are   far apart."]


def sentencepiece_ner_model(tokenizer) -> XLMRobertaForTokenClassification:
    """A random XLM-R token classifier over the tokenizer's vocabulary, made here (no weights committed).

    Seeded, so every run gives the same labels. Untrained, a narrow model gives most tokens one label;
    the head's bias favours O and I-PER/I-LOC and holds ORG and I-MISC back, which gives a mix of O,
    one-word and many-word entities, and words whose tokens disagree (so first/average/max differ).
    """
    config = XLMRobertaConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                              intermediate_size=64, max_position_embeddings=tokenizer.model_max_length + 2,
                              pad_token_id=tokenizer.pad_token_id, initializer_range=0.1,
                              id2label=dict(enumerate(CONLL_LABELS)),
                              label2id={label: index for index, label in enumerate(CONLL_LABELS)})
    with torch.random.fork_rng():  # leave the other tests' random state alone
        torch.manual_seed(0)
        model = XLMRobertaForTokenClassification(config).eval()
    bias = {"O": 0.5, "I-PER": 0.5, "I-LOC": 0.5, "I-MISC": -1.0, "B-ORG": -1.0, "I-ORG": -1.0}
    with torch.no_grad():
        model.classifier.bias.copy_(torch.tensor([bias.get(label, 0.0) for label in CONLL_LABELS]))
    return model


@pytest.fixture(scope="module")
def sentencepiece():
    """(runner, pipeline) on a SentencePiece model: the t5 fixture's fast Unigram tokenizer, whose words
    start with "▁" as XLM-R's do, and the random XLM-R token classifier above."""
    tokenizer = AutoTokenizer.from_pretrained(str(FIXTURES / "t5"))
    model = sentencepiece_ner_model(tokenizer)
    reference = pipeline("token-classification", model=model, tokenizer=tokenizer)
    return TokenClassifier(model, tokenizer), partial(reference, batch_size=64)


def whitespace_words(text: str) -> list[tuple[int, int]]:
    """(start, end) characters of each run of non-space characters."""
    return [match.span() for match in re.finditer(r"\S+", text)]


def cuts_a_word(entity: dict, text: str) -> bool:
    """Whether an entity starts or ends inside a whitespace-separated word."""
    words = whitespace_words(text)
    return entity["start"] not in {start for start, _ in words} or entity["end"] not in {end for _, end in words}


def overlaps(entities: list[dict]) -> bool:
    """Whether an entity starts on a character that the entity before it still holds."""
    return any(second["start"] < first["end"] for first, second in zip(entities, entities[1:]))


def test_sentencepiece_tokenizer_has_no_subword_prefix_and_its_words_are_the_whitespace_words(sentencepiece):
    """The premise: a fast Unigram tokenizer, no "##" for the pipeline to read (so it guesses from
    spaces), and word ids that mark the words between whitespace (its pre-tokenizer splits there)."""
    runner, _ = sentencepiece
    tokenizer = runner.tokenizer
    assert tokenizer.is_fast and type(tokenizer.backend_tokenizer.model).__name__ == "Unigram"
    assert not getattr(tokenizer.backend_tokenizer.model, "continuing_subword_prefix", None)
    for text in SENTENCEPIECE_TEXTS:
        assert word_ids_words(tokenizer, text) == whitespace_words(text), text


def test_sentencepiece_model_labels_several_kinds_of_entities(sentencepiece):
    runner, _ = sentencepiece
    entities = [entity for entities in runner(LINES, aggregation_strategy="first") for entity in entities]
    assert {entity["entity_group"] for entity in entities} >= {"PER", "LOC", "MISC"}
    assert sum(" " in entity["word"] for entity in entities) >= 10  # entities of several words
    labels = [token["entity"] for tokens in runner(LINES, ignore_labels=[]) for token in tokens]
    assert 0.1 < labels.count("O") / len(labels) < 0.5


@pytest.mark.parametrize("strategy", ["none", "simple"])
@pytest.mark.parametrize("ignore_labels", [None, []], ids=["ignore-O", "keep-all"])
def test_sentencepiece_token_strategies_match_the_pipeline(sentencepiece, strategy, ignore_labels):
    runner, reference = sentencepiece
    options = dict(aggregation_strategy=strategy, ignore_labels=ignore_labels)
    assert_all_same(runner(SENTENCEPIECE_TEXTS, **options), reference(SENTENCEPIECE_TEXTS, **options))


@pytest.mark.parametrize("strategy", WORD_STRATEGIES)
@pytest.mark.parametrize("ignore_labels", [None, []], ids=["ignore-O", "keep-all"])
def test_sentencepiece_entities_are_runs_of_whole_words_of_the_text(sentencepiece, strategy, ignore_labels):
    """`word` joins the entity's token pieces, so it is the text between `start` and `end` with each run
    of whitespace read as one space (the tokenizer keeps no other trace of it)."""
    runner, _ = sentencepiece
    results = runner(SENTENCEPIECE_TEXTS, aggregation_strategy=strategy, ignore_labels=ignore_labels)
    for text, entities in zip(SENTENCEPIECE_TEXTS, results):
        for entity in entities:
            assert not cuts_a_word(entity, text), (text, entity)
            assert entity["word"] == " ".join(text[entity["start"]:entity["end"]].split()), (text, entity)
            if " ".join(text.split()) == text:  # words one space apart: the word is the text itself
                assert entity["word"] == text[entity["start"]:entity["end"]]
        if ignore_labels == []:  # O groups kept: the entities are every word of the text, once, in order
            assert " ".join(entity["word"] for entity in entities) == " ".join(text.split())


@pytest.mark.parametrize("strategy", WORD_STRATEGIES)
def test_sentencepiece_pipeline_entities_cut_words_where_ours_do_not(sentencepiece, strategy):
    runner, reference = sentencepiece
    ours = runner(SENTENCEPIECE_TEXTS, aggregation_strategy=strategy, ignore_labels=[])
    theirs = reference(SENTENCEPIECE_TEXTS, aggregation_strategy=strategy, ignore_labels=[])
    assert not any(cuts_a_word(entity, text) for text, entities in zip(SENTENCEPIECE_TEXTS, ours)
                   for entity in entities)
    pipeline_cuts = sum(any(cuts_a_word(entity, text) for entity in entities)
                        for text, entities in zip(SENTENCEPIECE_TEXTS, theirs))
    assert pipeline_cuts >= len(SENTENCEPIECE_TEXTS) // 2  # most texts have a capitalised word or an accent


@pytest.mark.parametrize("strategy", WORD_STRATEGIES)
@pytest.mark.parametrize("ignore_labels", [None, []], ids=["ignore-O", "keep-all"])
def test_sentencepiece_matches_the_pipeline_where_its_guess_finds_the_word_ids_words_but_for_glued_words(
        sentencepiece, strategy, ignore_labels):
    """Where every word starts with a piece like "▁train" (no lone "▁", no unknown character) the
    pipeline finds the right words: same labels, offsets and scores. Its `word` still differs: it
    decodes each word alone ("▁Vienna" -> "Vienna"), then joins the decoded words, which have no
    "▁" left to turn into spaces ("to Vienna was" -> "toViennawas"); we decode the pieces once."""
    runner, reference = sentencepiece
    agree = [text for text in LINES + BARE_LINES
             if pipeline_word_groups(runner.tokenizer, text) == word_id_groups(runner.tokenizer, text)]
    assert len(agree) >= 6
    options = dict(aggregation_strategy=strategy, ignore_labels=ignore_labels)
    ours, theirs = runner(agree, **options), reference(agree, **options)
    glued = [{**entity, "word": entity["word"].replace(" ", "")} for entities in ours for entity in entities]
    assert_same(glued, [entity for entities in theirs for entity in entities])
    assert sum(" " in entity["word"] for entities in ours for entity in entities) >= 5  # so some were glued


def test_sentencepiece_pipeline_reads_a_lone_word_start_piece_as_a_word_of_its_own(sentencepiece):
    """A word the vocabulary cannot start with "▁" + letters is "▁" then the letters ("Zola": "▁", "Z",
    "o", "la"). Both pieces have the offsets of the "Z", so the pipeline sees a space before each and
    starts a word at both: "▁" becomes a word of its own, decoded as "" and labelled apart, and the
    next entity starts on the same character. Word ids keep "Zola" one word."""
    runner, reference = sentencepiece
    text = "Émile Zola lived in Besançon, naïvely."
    encoding = runner.tokenizer(text)
    assert encoding.tokens()[5:9] == ["▁", "Z", "o", "la"]
    assert encoding.token_to_chars(5) == encoding.token_to_chars(6)  # both stand for the "Z"
    assert [5, 6, 7, 8] in word_id_groups(runner.tokenizer, text)
    guessed = pipeline_word_groups(runner.tokenizer, text)
    assert [5] in guessed and [6, 7, 8] in guessed
    for strategy in WORD_STRATEGIES:
        ours = runner(SENTENCEPIECE_TEXTS, aggregation_strategy=strategy, ignore_labels=[])
        theirs = reference(SENTENCEPIECE_TEXTS, aggregation_strategy=strategy, ignore_labels=[])
        assert all(entity["word"] for entities in ours for entity in entities)
        assert not any(overlaps(entities) for entities in ours)
        assert sum(entity["word"] == "" for entities in theirs for entity in entities) >= 10
        assert sum(overlaps(entities) for entities in theirs) >= 10  # two entities claim the same character


def test_sentencepiece_pipeline_splits_a_word_at_an_unknown_character(sentencepiece):
    """An unknown piece always starts a new word in the pipeline, so "Besançon," is "Besan" + "çon,"
    there (and "naïvely." is "na" + "ïvely."), and its entities end inside those words; ours do not."""
    runner, reference = sentencepiece
    text = "Émile Zola lived in Besançon, naïvely."
    inside = {text.index("ç"), text.index("ï")}  # where the pipeline's second halves start
    encoding = runner.tokenizer(text)
    assert {encoding.tokens()[encoding.char_to_token(char)] for char in inside} == {"ç", "ï"}
    assert all(encoding["input_ids"][encoding.char_to_token(char)] == runner.tokenizer.unk_token_id for char in inside)
    for strategy in WORD_STRATEGIES:
        ours = runner(text, aggregation_strategy=strategy, ignore_labels=[])
        theirs = reference(text, aggregation_strategy=strategy, ignore_labels=[])
        assert {entity["end"] for entity in theirs} & inside
        assert not {entity["end"] for entity in ours} & inside
        our_words = [word for entity in ours for word in entity["word"].split(" ")]
        assert "Besançon," in our_words and "naïvely." in our_words


@pytest.mark.parametrize("stride", [None, 16], ids=["default-stride", "stride-16"])
def test_sentencepiece_long_text_entities_do_not_cut_a_word_at_a_window_edge(sentencepiece, stride):
    """A window ends wherever its tokens end, inside a word if need be ("...My name is Wolf" of
    "Wolfgang"); that window leaves the word out and the next one, which holds it whole, reads it."""
    runner, _ = sentencepiece
    texts = [text for text in LONG_TEXTS if len(runner.preprocess([text])) > 1]  # over the t5 tokenizer's 256
    step = runner.window_room - runner.check_stride(stride)
    cut = [partial_words([window.encoding.word_ids for window in runner.preprocess([text], stride)], step)
           for text in texts]
    assert sum(len(words) for per_window in cut for words in per_window) >= 2  # windows do end inside words
    for strategy in WORD_STRATEGIES:
        for text, entities in zip(texts, runner(texts, aggregation_strategy=strategy, ignore_labels=[], stride=stride)):
            assert not [entity for entity in entities if cuts_a_word(entity, text)], strategy  # "name is Wolf"


# --- long texts: windows, never truncation ---------------------------------------------------------------------

@pytest.mark.parametrize("name", ["bert-ner", "roberta-ner"])
@pytest.mark.parametrize("stride", [16, 60])
def test_stride_windows_with_simple_match_the_pipeline_with_the_same_stride(loaded, name, stride):
    runner, reference = loaded(name)
    options = dict(aggregation_strategy="simple", ignore_labels=[], stride=stride)
    assert_all_same(runner(LONG_TEXTS, **options), reference(LONG_TEXTS, **options))


@pytest.mark.parametrize("stride", [16, 60])
def test_stride_windows_match_the_pipeline_but_where_it_cuts_a_word_at_a_window_edge(loaded, stride):
    """A deliberate difference: where a window starts or ends inside a word, the pipeline labels the
    piece as a word of its own, and that piece's entity can win the merge of the two windows' entities;
    ours leave the piece out (the other window holds the word whole). On WordPiece the pipeline's words
    are the word ids words, so a cut is always at a window edge. Every entity of the pipeline's that
    cuts no word is ours too (same label, word, offsets, score, order); each of ours that the pipeline
    lacks is whole words over a stretch where the pipeline's entity cuts one."""
    runner, reference = loaded("bert-ner")
    pipeline_cuts = 0
    for strategy in WORD_STRATEGIES:
        options = dict(aggregation_strategy=strategy, ignore_labels=[], stride=stride)
        for text, ours, theirs in zip(LONG_TEXTS, runner(LONG_TEXTS, **options), reference(LONG_TEXTS, **options)):
            words = word_ids_words(runner.tokenizer, text)
            cut = [entity for entity in theirs if cuts_a_word_ids_word(entity, words)]
            whole = [entity for entity in theirs if entity not in cut]
            same = {(entity["entity_group"], entity["start"], entity["end"]) for entity in whole}
            assert_same([entity for entity in ours if (entity["entity_group"], entity["start"], entity["end"]) in same],
                        whole)
            assert not any(cuts_a_word_ids_word(entity, words) for entity in ours), (strategy, text)
            for entity in ours:
                if (entity["entity_group"], entity["start"], entity["end"]) not in same:
                    assert any(entity["start"] < other["end"] and other["start"] < entity["end"] for other in cut)
            pipeline_cuts += len(cut)
    assert pipeline_cuts >= 1  # e.g. "##gle in Zurich ..." with stride 16: the second window starts inside "Google"


def test_wordpiece_long_text_entities_do_not_cut_a_word_at_a_window_edge(loaded):
    """With stride 16 the second window of this text starts inside "Google": the pipeline starts an entity
    at its "##gle"; ours reads "Google" in the first window only, which holds it whole."""
    runner, reference = loaded("bert-ner")
    text = LONG_TEXTS[2]
    second = runner.preprocess([text], stride=16)[1]
    assert second.encoding.tokens[1:3] == ["##g", "##le"] and second.encoding.offsets[1][0] == text.index("gle")
    theirs = reference(text, aggregation_strategy="first", ignore_labels=[], stride=16)
    assert [entity["word"][:5] for entity in theirs if entity["start"] == text.index("gle")] == ["##gle"]
    for strategy in WORD_STRATEGIES:
        for stride in (None, 16, 60):
            for ignore_labels in (None, []):
                results = runner(LONG_TEXTS, aggregation_strategy=strategy, ignore_labels=ignore_labels, stride=stride)
                for long_text, entities in zip(LONG_TEXTS, results):
                    words = word_ids_words(runner.tokenizer, long_text)
                    assert not [entity for entity in entities if cuts_a_word_ids_word(entity, words)], strategy


def test_long_texts_are_read_whole_by_default(loaded):
    runner, _ = loaded("bert-ner")
    assert_all_same(runner(LONG_TEXTS, aggregation_strategy="simple", ignore_labels=[]),
                    runner(LONG_TEXTS, aggregation_strategy="simple", ignore_labels=[],
                           stride=runner.window_room // 4))
    for text, tokens in zip(LONG_TEXTS, runner(LONG_TEXTS, ignore_labels=[])):
        assert tokens[-1]["end"] == len(text)  # the final full stop was read
        assert len(tokens) == len(runner.tokenizer(text, verbose=False)["input_ids"]) - 2  # every token but [CLS]/[SEP]


@pytest.mark.parametrize("name", ["bert-ner", "roberta-ner"])
def test_none_on_a_long_text_gives_every_token_once_with_its_text_wide_index(loaded, name):
    runner, _ = loaded(name)
    text = LONG_TEXTS[1]
    tokens = runner(text, ignore_labels=[], stride=10)
    full = runner.tokenizer(text, return_offsets_mapping=True, verbose=False)
    assert len(full["input_ids"]) > 128
    assert [token["index"] for token in tokens] == list(range(1, len(full["input_ids"]) - 1))
    for token in tokens:
        assert token["word"] == full.tokens()[token["index"]]
        assert (token["start"], token["end"]) == tuple(full["offset_mapping"][token["index"]])


# --- batching, stages, int8 ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("batch_size", [1, 5])
def test_batch_size_does_not_change_results(loaded, batch_size):
    runner, _ = loaded("roberta-ner")
    texts = LINES[:10] + LONG_TEXTS[:2]
    for strategy in ("none", "average"):
        assert_all_same(runner(texts, aggregation_strategy=strategy, batch_size=batch_size),
                        runner(texts, aggregation_strategy=strategy, batch_size=32))


def test_stages_run_one_at_a_time_give_the_call_result(loaded):
    runner, _ = loaded("bert-ner")
    texts = [LINES[3], LONG_TEXTS[0]]
    windows = runner.preprocess(texts)
    assert [window.source for window in windows].count(1) > 1  # the long text is cut into windows
    logits = runner.forward([window.features for window in windows])
    assert logits.shape[:2] == (len(windows), max(len(window) for window in windows))
    for index, text in enumerate(texts):
        mine = [position for position, window in enumerate(windows) if window.source == index]
        stepped = runner.postprocess(text, [windows[i] for i in mine], [logits[i] for i in mine],
                                     aggregation_strategy="max", ignore_labels=[])
        assert_same(stepped, runner(text, aggregation_strategy="max", ignore_labels=[]))


def test_int8_model_gives_mostly_the_same_labels(loaded):
    runner, _ = loaded("roberta-ner")
    quantized = TokenClassifier.from_pretrained(str(FIXTURES / "roberta-ner"), dtype="int8")
    ours = [token["entity"] for tokens in runner(LINES, ignore_labels=[]) for token in tokens]
    int8 = [token["entity"] for tokens in quantized(LINES, ignore_labels=[]) for token in tokens]
    assert len(ours) == len(int8)
    assert sum(a == b for a, b in zip(ours, int8)) >= 0.8 * len(ours)


# --- pure functions on hand-made entries ---------------------------------------------------------------------------

def token(entity, score=0.9, start=0, end=1, word="w"):
    return {"entity": entity, "score": np.float32(score), "start": start, "end": end, "word": word, "pieces": [word]}


def join(pieces):
    return " ".join(pieces)


def test_bio_tags_as_the_pipeline():
    assert bio_tag("B-PER") == ("B", "PER")
    assert bio_tag("I-LOC") == ("I", "LOC")
    assert bio_tag("PER") == ("I", "PER")  # no prefix: continues


def test_two_adjacent_b_tags_are_two_entities_and_i_tags_continue():
    groups = group_bio_entities([token("B-PER", 0.8, 0, 5, "Angela"), token("I-PER", 0.6, 6, 12, "Merkel"),
                                 token("B-PER", 0.9, 13, 19, "Macron"), token("O", 0.5, 20, 22, "in"),
                                 token("I-LOC", 0.7, 23, 29, "Berlin")], join)
    assert [(g["entity_group"], g["word"], g["start"], g["end"]) for g in groups] == [
        ("PER", "Angela Merkel", 0, 12), ("PER", "Macron", 13, 19), ("O", "in", 20, 22), ("LOC", "Berlin", 23, 29)]
    assert groups[0]["score"] == pytest.approx(0.7)


def test_plain_labels_merge_and_the_group_name_is_the_part_after_the_first_dash():
    groups = group_bio_entities([token("LOC"), token("LOC"), token("B-X-Y"), token("I-X-Y")], join)
    assert [(g["entity_group"], g["word"]) for g in groups] == [("LOC", "w w"), ("X-Y", "w w")]


def test_label_word_first_average_max():
    id2label = {0: "O", 1: "B-PER", 2: "I-PER"}
    pieces = [{"scores": np.array([0.1, 0.6, 0.3]), "start": 0, "end": 3, "word": "Ang"},
              {"scores": np.array([0.1, 0.05, 0.85]), "start": 3, "end": 6, "word": "##ela"}]
    first = label_word(pieces, "first", id2label, "".join)
    assert (first["entity"], first["score"], first["start"], first["end"]) == ("B-PER", 0.6, 0, 6)
    assert label_word(pieces, "max", id2label, "".join)["entity"] == "I-PER"
    average = label_word(pieces, "average", id2label, "".join)
    assert (average["entity"], average["score"]) == ("I-PER", pytest.approx(0.575))
    assert first["word"] == "Ang##ela" and first["pieces"] == ["Ang", "##ela"]


def test_overlapping_entities_keep_the_longer_then_the_higher_score():
    entities = [{"start": 0, "end": 5, "score": 0.9}, {"start": 3, "end": 12, "score": 0.2},
                {"start": 20, "end": 25, "score": 0.4}, {"start": 20, "end": 25, "score": 0.6},
                {"start": 30, "end": 31, "score": 0.1}]
    assert merge_overlapping_entities(entities) == [entities[1], entities[3], entities[4]]


def test_partial_words_are_the_words_a_window_cuts_that_another_window_holds_whole():
    # Text tokens and their words: 0 1 1 2 3 3 3 4; windows of 4 tokens sharing 2 (step 2), [CLS]/[SEP] around.
    windows = [[None, 0, 1, 1, 2, None], [None, 1, 2, 3, 3, None], [None, 3, 3, 3, 4, None]]
    assert partial_words(windows, step=2) == [set(), {1, 3}, set()]  # window 1 cuts word 1 and word 3
    assert partial_words([[None, 0, 1, None], [None, 1, 1, None]], step=1) == [{1}, set()]  # a first window's end
    assert partial_words([[None, 0, 0, None], [None, 0, 1, None]], step=1) == [set(), {0}]  # a last window's start
    # Word 1 has 4 tokens, longer than the stride of 1: no window holds it whole, every window keeps its part.
    assert partial_words([[None, 0, 1, 1, None], [None, 1, 1, 1, None], [None, 1, 2, None]], step=2) == [set()] * 3
    # No overlap (stride 0): a word across the edge is cut by both windows, and kept by both.
    assert partial_words([[None, 0, 1, None], [None, 1, 2, None]], step=2) == [set(), set()]
    assert partial_words([[None, 0, 0, 1, None]], step=3) == [set()]  # one window holds the whole text


def test_a_token_read_twice_keeps_its_higher_scoring_reading():
    tokens = [{"index": 2, "score": 0.5}, {"index": 1, "score": 0.9}, {"index": 2, "score": 0.7}]
    assert keep_each_token_once(tokens) == [tokens[1], tokens[2]]


labels = st.sampled_from(["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "MISC"])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(labels, st.floats(0, 1, width=32)), max_size=30))
def test_bio_grouping_keeps_order_coverage_and_scores(members):
    entities = [token(label, score, 2 * index, 2 * index + 1, f"t{index}") for index, (label, score) in
                enumerate(members)]
    groups = group_bio_entities(entities, join)
    assert len(groups) <= len(entities)
    assert sum(len(group["word"].split(" ")) for group in groups) == len(entities)  # every member once
    assert all(group["start"] < group["end"] for group in groups)
    assert [group["start"] for group in groups] == sorted(group["start"] for group in groups)
    assert all(0 <= group["score"] <= 1 for group in groups)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 50), st.integers(1, 10), st.floats(0, 1)), max_size=20))
def test_merged_entities_never_overlap_and_come_from_the_input(spans):
    entities = [{"start": start, "end": start + length, "score": score} for start, length, score in spans]
    merged = merge_overlapping_entities(entities)
    assert all(entity in entities for entity in merged)
    assert all(first["start"] <= second["start"] for first, second in zip(merged, merged[1:]))
    assert all(not first["start"] <= second["start"] < first["end"] for first, second in zip(merged, merged[1:]))


# --- bad input --------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("inputs, error, message", [
    (None, TypeError, "inputs must be a string"),
    (3.5, TypeError, "inputs must be a string or a list of strings, got float"),
    ("", ValueError, "inputs contains an empty string"),
    ([], ValueError, "inputs is empty"),
    (["ok", None], TypeError, r"inputs\[1\] must be a string"),
], ids=repr)
def test_bad_inputs_name_the_argument(loaded, inputs, error, message):
    runner, _ = loaded("bert-ner")
    with pytest.raises(error, match=message):
        runner(inputs)


@pytest.mark.parametrize("options, error, message", [
    ({"aggregation_strategy": "longest"}, ValueError, "aggregation_strategy must be one of 'none', 'simple'"),
    ({"aggregation_strategy": None}, ValueError, "aggregation_strategy must be one of"),
    ({"ignore_labels": "O"}, TypeError, r"ignore_labels must be a list of label names such as \['O'\]"),
    ({"ignore_labels": [0]}, TypeError, "ignore_labels must be a list of label names"),
    ({"ignore_labels": 3}, TypeError, "ignore_labels must be a list of label names such as .* got 3"),
    ({"stride": -1}, ValueError, "stride must be >= 0 and smaller than the 126 text tokens a window holds"),
    ({"stride": 126}, ValueError, "stride must be >= 0 and smaller than the 126"),
    ({"stride": 500}, ValueError, "stride must be"),
    ({"stride": 4.0}, TypeError, "stride must be an int"),
    ({"batch_size": 0}, ValueError, "batch_size must be >= 1"),
], ids=repr)
def test_bad_options_name_the_argument(loaded, options, error, message):
    runner, _ = loaded("bert-ner")
    with pytest.raises(error, match=message):
        runner(LINES[0], **options)


def test_a_slow_tokenizer_is_refused_with_the_fix(loaded):
    runner, _ = loaded("bert-ner")
    slow = SimpleNamespace(is_fast=False)
    with pytest.raises(ValueError, match="slow .*tokenizer.*word ids: a fast tokenizer is required"):
        TokenClassifier(runner.model, slow)


def test_the_slow_tokenizer_error_says_why_none_and_simple_need_one_too(loaded):
    """4.57.6 took a slow tokenizer for "none"/"simple" (start/end None); our start/end are always offsets."""
    runner, _ = loaded("bert-ner")
    with pytest.raises(ValueError, match=r"start/end in the text, with any aggregation_strategy \('none' and "
                                         r"'simple' too\).*a fast tokenizer is required.*tokenizer.json"):
        TokenClassifier(runner.model, SimpleNamespace(is_fast=False))


def test_ignore_labels_may_be_any_iterable_of_names(loaded):
    runner, _ = loaded("bert-ner")
    as_list = runner(LINES[0], aggregation_strategy="simple", ignore_labels=["O"])
    assert runner(LINES[0], aggregation_strategy="simple", ignore_labels=(label for label in ["O"])) == as_list
