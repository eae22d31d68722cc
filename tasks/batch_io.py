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
    """One Parquet file from the JSON-lines shards, a shard at a time (nested answers become struct/list columns).

    Rows need not share their columns (an `id` some rows lack): a first pass finds every column and
    its type, and each shard is written with all of them, null where a row has none.
    """
    import pyarrow as pa

    parquet = pyarrow_parquet()
    schemas = [shard_table(shard).schema for shard in shard_files] or [pa.schema([])]
    try:
        schema = pa.unify_schemas(schemas, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError) as error:
        raise ValueError(f"the rows cannot share one Parquet schema ({error}); write JSON lines instead "
                         "(an output path ending in .jsonl)") from error
    with parquet.ParquetWriter(path, schema) as writer:
        for shard in shard_files:
            writer.write_table(conformed(shard_table(shard), schema))


def shard_table(shard: Path):
    """A shard's rows as an Arrow table, or a clear error when a column mixes types Parquet cannot hold together."""
    import pyarrow as pa

    rows = [json.loads(line) for line in Path(shard).read_text(encoding="utf-8").splitlines()]
    try:
        return pa.Table.from_pylist(rows)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as error:
        raise ValueError(f"a column holds values of different types ({error}); Parquet needs one type per column: "
                         "write JSON lines instead (an output path ending in .jsonl)") from error


def conformed(table, schema):
    """The table with the schema's columns in its order: missing ones as nulls, the others cast."""
    import pyarrow as pa

    columns = [table.column(field.name).cast(field.type) if field.name in table.column_names
               else pa.nulls(table.num_rows, field.type) for field in schema]
    return pa.Table.from_arrays(columns, schema=schema)
