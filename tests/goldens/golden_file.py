"""What both golden scripts (and the tests that read their files) share: JSON-ready answers, the file."""

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
