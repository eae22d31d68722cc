"""The layers depend one way: decoding <- core <- tasks. decoding/ imports neither core/ nor tasks/, core/
does not import tasks/, and nothing imports transformers' pipelines (they are the reference, not a part)."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LOWER_LAYERS_MAY_NOT_IMPORT = {"decoding": ("core", "tasks"), "core": ("tasks",), "tasks": ()}


def imported_modules(path: Path) -> set[str]:
    """Every module a source file imports, at any depth of the file (functions included)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("package", list(LOWER_LAYERS_MAY_NOT_IMPORT))
def test_sources_import_only_lower_layers(package):
    for path in sorted((ROOT / package).rglob("*.py")):
        for module in imported_modules(path):
            top = module.split(".")[0]
            assert top not in LOWER_LAYERS_MAY_NOT_IMPORT[package], f"{path.relative_to(ROOT)} imports {module}"
            assert not module.startswith("transformers.pipelines"), f"{path.relative_to(ROOT)} imports {module}"


@pytest.mark.parametrize("package, forbidden", [("decoding", ("core", "tasks")), ("core", ("tasks",))])
def test_importing_a_layer_loads_no_upper_one(package, forbidden):
    code = (f"import sys, pkgutil, importlib, {package}\n"  # every module of the package, not only its __init__
            f"for module in pkgutil.iter_modules({package}.__path__): importlib.import_module('{package}.' + module.name)\n"
            f"print(sorted({{m.split('.')[0] for m in sys.modules}} & {set(forbidden)!r}))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_decoding_does_not_load_the_model_loading_code():
    code = "import sys, decoding, decoding.streaming; print('core.loading' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.stdout.strip() == "False", done.stderr
