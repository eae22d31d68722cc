"""What both golden scripts (and the tests that read their files) share: JSON-ready answers, the file,
and the model folder a case loads.
"""

import hashlib
import json
import sys
from pathlib import Path

import torch


def plain(value):
    """Tensors (return_tensors=True) as nested lists, so an answer fits in JSON and compares equal."""
    if isinstance(value, torch.Tensor):
        return value.tolist()
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    return value


def model_folder(spec: dict, fixtures: Path, scratch: Path) -> Path:
    """The folder a case loads: its fixture, or, when the case has a "generation_config" field, a copy
    of the fixture in `scratch` whose generation_config.json has those values on top.

    That is how a case tests a model's own generation settings (a temperature, a top_p) without one
    more committed fixture; the golden script and the replay test both load through here, so the two
    sides run the same model. The copy links every other file to the fixture's.
    """
    fixture = fixtures / spec["fixture"]
    changes = spec.get("generation_config")
    if not changes:
        return fixture
    # A name that is a Python identifier (transformers warns about others) and the same for the same copy.
    digest = hashlib.sha1(json.dumps([spec["fixture"], changes], sort_keys=True).encode("utf-8")).hexdigest()
    folder = scratch / f"fixture_{digest[:12]}"
    if not folder.is_dir():
        folder.mkdir(parents=True)
        for source in fixture.iterdir():
            if source.name != "generation_config.json":
                (folder / source.name).symlink_to(source.resolve())
        config = json.loads((fixture / "generation_config.json").read_text(encoding="utf-8"))
        (folder / "generation_config.json").write_text(json.dumps({**config, **changes}, indent=2) + "\n",
                                                       encoding="utf-8")
    return folder


def make_goldens(cases: list[dict], run, output: Path, recorded=lambda spec: {}) -> None:
    """Run the reference on every case (or those named on the command line) and write `output`.

    run(spec, pipelines) -> the reference's answer; recorded(spec) -> extra fields stored with the case.
    """
    import transformers

    selected, pipelines, results = sys.argv[1:], {}, []
    for spec in cases:
        if selected and spec["id"] not in selected:
            continue
        answer = plain(run(spec, pipelines))
        results.append({**spec, **recorded(spec), "output": answer})
        print(spec["id"], json.dumps(answer)[:160], flush=True)
    if selected:
        return  # a partial run is for looking, not for writing the golden file
    document = {
        "made_with": {"transformers": transformers.__version__, "torch": torch.__version__},
        "how": f"HF_HUB_OFFLINE=1 /work/venv457/bin/python tests/goldens/{Path(sys.argv[0]).name}",
        "cases": results,
    }
    output.write_text(json.dumps(document, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {len(results)} cases to {output}")
