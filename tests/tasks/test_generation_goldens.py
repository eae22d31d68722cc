"""Every case of tests/goldens/generation.json, made by the transformers 4.57.6 pipelines on our fixture
models (tests/goldens/make_generation_goldens.py), replayed through our runners: the same text and
the same token ids, exactly.

A case names the pipeline task, the fixture, the inputs and the call options; seeded cases seed
right before the call, as the script did. The options the script added to the 4.57.6 call only
(`reference_options`, i.e. `max_new_tokens=None`) stand for nopipe's documented difference: a
max_length wins over the pipeline's default max_new_tokens=256. A case with a "generation_config"
runs on a copy of its fixture with those values on top, made the same way as by the script.

Some cases are there to tell two sources of settings apart (the pipeline's defaults over the
model's generation_config, task_specific_params over the generation_config); WOULD_CATCH lists what
each would turn into if the wrong source won, and a test checks that this gives other text.
"""

import json
import warnings

import pytest

import tasks
from core.seed import set_seed
from tests.goldens.golden_file import model_folder, plain
from tests.paths import FIXTURES, GOLDENS

DOCUMENT = json.loads((GOLDENS / "generation.json").read_text(encoding="utf-8"))
CASES = DOCUMENT["cases"]
CASE = {case["id"]: case for case in CASES}

# A case, and what it becomes if the wrong source of settings wins (options added, or another task).
WOULD_CATCH = [
    # M2M100's generation_config num_beams=5 over the pipeline's 4.
    *((case_id, {"options": {"num_beams": 5}}) for case_id in (
        "m2m100-default-beams-en-fr", "m2m100-default-beams-en-de", "m2m100-default-beams-en-de-max-length",
        "m2m100-default-beams-list", "m2m100-default-beams-task-name")),
    # The model's temperature 0.3 over the pipeline's 0.7; the model's top_p 0.8 left out.
    *((case_id, {"options": change}) for case_id in ("llama-model-temperature-top-p",
                                                     "llama-model-temperature-top-p-list")
      for change in ({"temperature": 0.3}, {"top_p": 1.0})),
    # T5's task_specific_params["summarization"] (prefix, beams, lengths) not applied: text2text has none.
    *((case_id, {"task": "text2text-generation"}) for case_id in (
        "t5-summarize-defaults", "t5-summarize-max-length", "t5-summarize-max-length-below-task-min",
        "t5-summarize-list")),
]


@pytest.fixture(scope="module")
def runner_for(tmp_path_factory):
    """tasks.load(task, model=the case's model folder), each pair loaded once for the whole module."""
    scratch, loaded = tmp_path_factory.mktemp("fixture-copies"), {}

    def get(case: dict):
        key = (case["task"], model_folder(case, FIXTURES, scratch))
        if key not in loaded:
            loaded[key] = tasks.load(key[0], model=str(key[1]))
        return loaded[key]

    return get


def replay(case: dict, runner_for):
    """Call our runner the way the script called the pipeline; the answer as plain JSON values."""
    runner = runner_for(case)
    runner.tokenizer.chat_template = case["chat_template"]  # the llama fixture ships none; chat cases set one
    if case["seed"] is not None:
        set_seed(case["seed"])
    with warnings.catch_warnings():
        # Some cases trigger our warnings on purpose (e.g. min_length above max_length); they are
        # asserted in test_seq2seq_tasks.py, here only the output counts.
        warnings.simplefilter("ignore")
        return plain(runner(case["inputs"], **case["options"]))


def test_goldens_come_from_4_57_6_and_cover_every_task():
    assert DOCUMENT["made_with"]["transformers"] == "4.57.6"
    tasks_covered = {case["task"].split("_")[0] for case in CASES}
    assert tasks_covered == {"text-generation", "text2text-generation", "summarization", "translation"}
    assert {case["fixture"] for case in CASES} == {"gpt2", "llama", "bart-cnn", "t5", "marian-en-fr", "m2m100"}
    assert len(CASE) == len(CASES) >= 70


@pytest.mark.parametrize("case", CASES, ids=[case["id"] for case in CASES])
def test_same_output_as_the_4_57_6_pipeline(case, runner_for):
    assert replay(case, runner_for) == case["output"]


def texts(output) -> list[str]:
    """The texts of an answer, whatever their key ("summary_text" from summarization, "generated_text"...)."""
    if isinstance(output, dict):
        return [text for value in output.values() for text in texts(value)]
    if isinstance(output, list):
        return [text for item in output for text in texts(item)]
    return [output] if isinstance(output, str) else []


def wrong_name(wrong: dict) -> str:
    """A test id: {"options": {"num_beams": 5}} -> "num_beams=5", {"task": "t"} -> "task=t"."""
    changes = {**wrong.get("options", {}), **{key: value for key, value in wrong.items() if key != "options"}}
    return "-".join(f"{key}={value}" for key, value in changes.items())


@pytest.mark.parametrize(("case_id", "wrong"), WOULD_CATCH,
                         ids=[f"{case_id}-{wrong_name(wrong)}" for case_id, wrong in WOULD_CATCH])
def test_the_golden_would_catch_the_wrong_settings_winning(case_id, wrong, runner_for):
    case = CASE[case_id]
    changed = {**case, "task": wrong.get("task", case["task"]),
               "options": {**case["options"], **wrong.get("options", {})}}
    assert texts(case["output"]) and texts(replay(changed, runner_for)) != texts(case["output"])
