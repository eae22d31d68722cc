"""Reading a dataset row by row and writing answers, for batch jobs (tasks/batch.py).

Inputs stream (one row in memory at a time, whatever the file's size): JSON lines (`.jsonl`,
`.json`), CSV (`.csv`), Parquet (`.parquet`, with the `batch` extra's pyarrow) and plain text (any
other suffix: one item per line, in a column named "text"). Every row carries its number in the
file as a user would count it: the line for text and JSON lines, the data row for CSV and Parquet.
Outputs are JSON lines or Parquet, by the destination's suffix.
"""

import csv
import json
import os
from collections.abc import Iterator
from pathlib import Path

LINE_FORMATS = (".jsonl", ".json", ".ndjson")
PARQUET = ".parquet"


def input_format(path: Path) -> str:
    """'jsonl', 'csv', 'parquet' or 'text', from the suffix."""
    suffix = path.suffix.lower()
    if suffix in LINE_FORMATS:
        return "jsonl"
    if suffix == ".csv":
        return "csv"
    if suffix == PARQUET:
        return "parquet"
    return "text"


def pyarrow_parquet():
    """pyarrow.parquet, or an error that names the extra to install."""
    try:
        import pyarrow.parquet as parquet
    except ImportError:
        raise ImportError("Parquet files need pyarrow: pip install 'nopipe[batch]' (or pip install pyarrow)") from None
    return parquet


def read_rows(path: Path) -> Iterator[tuple[int, dict]]:
    """(row number, row) for every row of the file, streamed."""
    kind = input_format(path)
    if kind == "parquet":
        yield from read_parquet(path)
        return
    with open(path, encoding="utf-8", newline="" if kind == "csv" else None) as file:
        if kind == "csv":
            for number, row in enumerate(csv.DictReader(file), start=1):
                yield number, row
            return
        for number, line in enumerate(file, start=1):
            line = line.rstrip("\n").rstrip("\r")
            yield number, (json_row(line, number) if kind == "jsonl" else {"text": line})


def json_row(line: str, number: int) -> dict:
    """One JSON-lines row; a blank or broken line is a bad row, kept so that it is reported, not dropped."""
    try:
        row = json.loads(line)
    except json.JSONDecodeError as error:
        return {"__bad_row__": f"line {number} is not JSON ({error.msg})"}
    return row if isinstance(row, dict) else {"__bad_row__": f"line {number} is not a JSON object"}


def read_parquet(path: Path) -> Iterator[tuple[int, dict]]:
    parquet = pyarrow_parquet()
    number = 0
    for batch in parquet.ParquetFile(path).iter_batches(batch_size=1024):
        for row in batch.to_pylist():
            number += 1
            yield number, row


def count_rows(path: Path) -> int:
    """Rows in the file, for the progress bar's total (a pass over the file without the model)."""
    if input_format(path) == "parquet":
        return pyarrow_parquet().ParquetFile(path).metadata.num_rows
    return sum(1 for _ in read_rows(path))


def to_json(value) -> str:
    """JSON of an output row; numpy scalars (a runner's scores) become plain numbers."""
    return json.dumps(value, ensure_ascii=False, default=lambda item: item.item() if hasattr(item, "item") else str(item))


def write_atomically(path: Path, lines: list[str]) -> None:
    """Write the lines to a temporary file beside `path`, then rename it: a reader (or a resumed job)
    sees the whole file or none of it."""
    temporary = path.with_name(path.name + ".tmp")
    with open(temporary, "w", encoding="utf-8") as file:
        file.writelines(line + "\n" for line in lines)
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, path)


def write_output(dest: Path, shard_files: list[Path]) -> None:
    """The shards, in order, as one JSON-lines or Parquet file at `dest` (written beside it, then renamed)."""
    temporary = dest.with_name(dest.name + ".tmp")
    if dest.suffix.lower() == PARQUET:
        write_parquet(temporary, shard_files)
    else:
        with open(temporary, "w", encoding="utf-8") as out:
            for shard in shard_files:
                with open(shard, encoding="utf-8") as file:
                    out.writelines(file)
    os.replace(temporary, dest)


def write_parquet(path: Path, shard_files: list[Path]) -> None:
    """One Parquet file from the JSON-lines shards, a shard at a time (nested answers become struct/list columns)."""
    import pyarrow as pa

    parquet = pyarrow_parquet()
    tables = (pa.Table.from_pylist([json.loads(line) for line in Path(shard).read_text(encoding="utf-8").splitlines()])
              for shard in shard_files)
    writer = None
    try:
        for table in tables:
            if table.num_rows == 0:
                continue
            if writer is None:
                writer = parquet.ParquetWriter(path, table.schema)
            writer.write_table(table.cast(writer.schema))
    finally:
        if writer is not None:
            writer.close()
    if writer is None:
        parquet.write_table(pa.table({}), path)
