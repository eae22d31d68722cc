"""decoding/ replaces `generate()`: it never calls `generate()` or any other GenerationMixin method.

Checked twice: in the source (no attribute access or import that reaches the mixin), and at run
time (every mixin method raises while our loop runs greedy, sampling, beam search and streaming).
"""

import ast
from pathlib import Path

import pytest
from tiny_models import fixture_model, prompt_batch, tiny_model
from transformers.generation.utils import GenerationMixin

import decoding
from decoding import generate, stream

SOURCES = sorted(Path(decoding.__file__).parent.glob("*.py"))
MIXIN_NAMES = {name for name in dir(GenerationMixin) if not name.startswith("__")}


def mixin_uses(path: Path) -> list[str]:
    """`file:line name` for each attribute access, getattr string or import that names a GenerationMixin member."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Attribute) and node.attr in MIXIN_NAMES:
            found.append(f"{path.name}:{node.lineno} .{node.attr}")
        elif isinstance(node, ast.Call) and getattr(node.func, "id", None) in ("getattr", "hasattr") and any(
                isinstance(arg, ast.Constant) and arg.value in MIXIN_NAMES for arg in node.args):
            found.append(f"{path.name}:{node.lineno} {ast.unparse(node)}")
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("transformers.generation"):
            found.append(f"{path.name}:{node.lineno} from {node.module} import ...")
        elif isinstance(node, ast.ImportFrom) and node.module == "transformers" and any(
                alias.name in ("GenerationMixin", "GenerationConfig") for alias in node.names):
            found.append(f"{path.name}:{node.lineno} from transformers import ...")
    return found


def test_sources_never_reach_generation_mixin():
    assert len(SOURCES) >= 10, f"decoding sources not found next to {decoding.__file__}"
    uses = [use for path in SOURCES for use in mixin_uses(path)]
    assert not uses, "decoding/ must call the model's forward only:\n" + "\n".join(uses)


def test_the_source_check_would_see_a_call(tmp_path):
    """The check above is only worth something if it catches the usual ways in."""
    sample = tmp_path / "sample.py"
    sample.write_text("from transformers.generation.utils import GenerationMixin\n"
                      "inputs = model.prepare_inputs_for_generation(ids)\n"
                      "out = model.generate(ids)\n"
                      "step = getattr(model, '_update_model_kwargs_for_generation')\n", encoding="utf-8")
    assert len(mixin_uses(sample)) == 4


def trap_mixin(monkeypatch):
    """Every GenerationMixin method raises from here to the end of the test (models are loaded before:
    `from_pretrained` itself calls mixin methods)."""
    def trap(name):
        def raise_error(*args, **kwargs):
            raise AssertionError(f"decoding called GenerationMixin.{name}")
        return raise_error

    for name, value in vars(GenerationMixin).items():
        if callable(value) and not name.startswith("__"):
            monkeypatch.setattr(GenerationMixin, name, trap(name))


@pytest.mark.parametrize("arch", ["gpt2", "bart"])
def test_decoding_runs_with_every_mixin_method_trapped(arch, monkeypatch):
    model = tiny_model(arch)
    input_ids, attention_mask = prompt_batch(model)
    trap_mixin(monkeypatch)
    with pytest.raises(AssertionError, match="GenerationMixin.generate"):
        model.generate(input_ids, attention_mask=attention_mask)  # the trap is armed
    for settings in (dict(max_new_tokens=5), dict(max_new_tokens=5, num_beams=2),
                     dict(max_new_tokens=5, do_sample=True), dict(max_new_tokens=5, do_sample=True, num_beams=2)):
        assert generate(model, input_ids, attention_mask, **settings).sequences.shape[0] == input_ids.shape[0]


def test_streaming_runs_with_every_mixin_method_trapped(monkeypatch):
    model, tokenizer = fixture_model("gpt2")
    input_ids = tokenizer("Once upon a time", return_tensors="pt")["input_ids"]
    trap_mixin(monkeypatch)
    assert "".join(stream(model, tokenizer, input_ids, max_new_tokens=5))
