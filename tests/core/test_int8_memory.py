"""int8 models do not keep the float32 file resident (core.device.release_weight_file_pages)."""

import core.device
from core.device import release_weight_file_pages
from tasks.text_classification import TextClassifier
from tests.paths import FIXTURES


def resident_file_mb() -> float:
    """RssFile of this process: pages of mapped files (the safetensors mapping among them)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("RssFile"):
                return int(line.split()[1]) / 1024
    return 0.0


def test_int8_answers_are_the_same_with_and_without_releasing_the_file_pages(monkeypatch):
    folder = str(FIXTURES / "distilbert-sst2")
    texts = ["I love it.", "This was a terrible film.", "Fine, I guess."]
    released = TextClassifier.from_pretrained(folder, device="cpu", dtype="int8")(texts, top_k=None)
    monkeypatch.setattr(core.device, "release_weight_file_pages", lambda: 0)
    kept = TextClassifier.from_pretrained(folder, device="cpu", dtype="int8")(texts, top_k=None)
    assert released == kept


def test_released_pages_leave_the_rss_and_a_written_page_keeps_its_change(tmp_path):
    """A private writable mapping of a .safetensors file, as from_pretrained makes one (here by hand: 32 MB)."""
    import mmap

    import numpy as np

    path = tmp_path / "m.safetensors"
    np.arange(8_000_000, dtype=np.float32).tofile(path)
    with open(path, "rb") as file:
        mapped = mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_COPY)
    values = np.frombuffer(mapped, dtype=np.float32)
    values[5] = -1.0  # a copy-on-write page: MADV_DONTNEED would lose this change, MADV_PAGEOUT must not
    total = float(values.sum(dtype=np.float64))  # touches every page
    before = resident_file_mb()
    assert release_weight_file_pages() >= 32e6
    assert resident_file_mb() < before - 16
    assert values[5] == -1.0 and float(values.sum(dtype=np.float64)) == total
