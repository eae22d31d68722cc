"""Every case of tests/goldens/generation.json, made by the transformers 4.57.6 pipelines on our fixture
models (tests/goldens/make_generation_goldens.py), replayed through our runners: the same text and
the same token ids, exactly.

A case names the pipeline task, the fixture, the inputs and the call options; seeded cases seed
right before the call, as the script did. The options the script added to the 4.57.6 call only
(`reference_options`, i.e. `max_new_tokens=None`) stand for nopipe's documented difference: a
max_length wins over the pipeline's default max_new_tokens=256.
"""

import json
import warnings

import pytest

import tasks
from core.seed import set_seed
from tests.goldens.golden_file import plain
from tests.paths import FIXTURES, GOLDENS

DOCUMENT = json.loads((GOLDENS / "generation.json").read_text(encoding="utf-8"))
CASES = DOCUMENT["cases"]


@pytest.fixture(scope="module")
def runner_for():
    """tasks.load(task, model=fixture), each pair loaded once for the whole module."""
    loaded = {}

    def get(task: str, fixture: str):
        if (task, fixture) not in loaded:
            loaded[task, fixture] = tasks.load(task, model=str(FIXTURES / fixture))
        return loaded[task, fixture]

    return get


def test_goldens_come_from_4_57_6_and_cover_every_task():
    assert DOCUMENT["made_with"]["transformers"] == "4.57.6"
    tasks_covered = {case["task"].split("_")[0] for case in CASES}
    assert tasks_covered == {"text-generation", "text2text-generation", "summarization", "translation"}
    assert {case["fixture"] for case in CASES} == {"gpt2", "llama", "bart-cnn", "t5", "marian-en-fr", "m2m100"}
    assert len({case["id"] for case in CASES}) == len(CASES) >= 59


@pytest.mark.parametrize("case", CASES, ids=[case["id"] for case in CASES])
def test_same_output_as_the_4_57_6_pipeline(case, runner_for):
    runner = runner_for(case["task"], case["fixture"])
    runner.tokenizer.chat_template = case["chat_template"]  # the llama fixture ships none; chat cases set one
    if case["seed"] is not None:
        set_seed(case["seed"])
    with warnings.catch_warnings():
        # Some cases trigger our warnings on purpose (e.g. min_length above max_length); they are
        # asserted in test_seq2seq_tasks.py, here only the output counts.
        warnings.simplefilter("ignore")
        output = runner(case["inputs"], **case["options"])
    assert plain(output) == case["output"]
