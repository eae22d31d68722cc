"""Checks that a checkpoint is sound and fits the task before it answers anything.

transformers loads many broken or mismatched checkpoints without a word: a sentiment classifier's
head fits a token-classification model when the parameter names match, a NaN in the weights gives
`score: nan`, a tokenizer with ids past the embedding fails later with "index out of range in self".
Each check here turns one of those into a ValueError (or `ModelLoadError` for an unreadable file)
that names the checkpoint, what is wrong and what to do. README: "Loading a model, and what it refuses".
"""

import json
from functools import cache
from pathlib import Path

import torch
from transformers.models.auto import modeling_auto

# The tasks a checkpoint's `config.architectures` can say it was trained for, with transformers'
# table of the classes of each (pipeline task names, as a user of `pipeline()` knows them).
TRAINED_FOR = {
    "text-classification": modeling_auto.MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES,
    "token-classification": modeling_auto.MODEL_FOR_TOKEN_CLASSIFICATION_MAPPING_NAMES,
    "question-answering": modeling_auto.MODEL_FOR_QUESTION_ANSWERING_MAPPING_NAMES,
    "text-generation": modeling_auto.MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
    "summarization/translation (text2text-generation)": modeling_auto.MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES,
}
LABELLED_TASKS = ("text-classification", "token-classification")  # heads whose outputs are config.id2label
OVERRIDE = "allow_other_head=True"


@cache
def _class_names(task: str) -> frozenset[str]:
    """Every class name in transformers' model_type -> class name table of `task`."""
    names = set()
    for value in TRAINED_FOR[task].values():
        names.update(value if isinstance(value, (tuple, list)) else [value])
    return frozenset(names)


def head_task(head) -> str:
    """The task an AutoModelFor* class serves, e.g. "question-answering" (its own name if unknown)."""
    table = getattr(getattr(head, "_model_mapping", None), "_model_mapping", None)
    for task, names_mapping in TRAINED_FOR.items():
        if names_mapping is table:
            return task
    return head.__name__


def trained_tasks(config) -> list[tuple[str, str]]:
    """(task, architecture) pairs that `config.architectures` names; none for a base checkpoint."""
    found = []
    for architecture in config.architectures or ():
        found += [(task, architecture) for task in TRAINED_FOR if architecture in _class_names(task)]
    return found


def looks_like_entity_tags(labels: list[str]) -> bool:
    """True for an NER label map such as O, B-PER, I-PER (IOB/BIOES tags, at least one B-)."""
    tags = [label for label in labels if label != "O"]
    return bool(tags) and any(label.startswith("B-") for label in tags) and \
        all(label[:2] in ("B-", "I-", "E-", "S-", "L-", "U-") for label in tags)


def _label_list(config) -> str:
    labels = [str(label) for _, label in sorted((getattr(config, "id2label", None) or {}).items())]
    return ", ".join(labels[:5]) + (", ..." if len(labels) > 5 else "")


def check_trained_for(name: str, config, head, head_class: str) -> None:
    """Refuse a checkpoint trained for another task than `head`'s, named by its `config.architectures`
    (or, for a base checkpoint, by an entity-tag label map given to a head that is not NER)."""
    task = head_task(head)
    trained = trained_tasks(config)
    if head_class in (config.architectures or ()) or any(other == task for other, _ in trained):
        return
    if trained:
        other, architecture = trained[0]
        labels = f" (labels: {_label_list(config)})" if other in LABELLED_TASKS else ""
        raise ValueError(f"{name!r} has no trained weights for {head_class}: it was trained for {other} "
                         f"(architecture {architecture}){labels} and not fine-tuned for this task ({task}). Use "
                         f"a checkpoint trained for it, or pass {OVERRIDE} if its weights really fit this head")
    labels = list((getattr(config, "id2label", None) or {}).values())
    if task != "token-classification" and looks_like_entity_tags(labels):
        raise ValueError(f"{name!r} has entity tags as labels ({_label_list(config)}): it was trained for "
                         f"token-classification, not {task}. Use a checkpoint trained for {task}, or pass "
                         f"{OVERRIDE} if its weights really fit this head")


def check_label_map(name: str, config) -> None:
    """The labels of a classifier must be numbered 0..n-1: a gap would fail as a KeyError on the
    first answer that picks the missing id."""
    ids = sorted(int(key) for key in (getattr(config, "id2label", None) or {}))
    if ids != list(range(len(ids))):
        missing = sorted(set(range(max(ids) + 1)) - set(ids))
        raise ValueError(f"the label map (id2label) of {name!r} has ids {ids[:8]} with no label for id "
                         f"{missing[0]}: labels must be numbered 0..n-1. Fix id2label and label2id in its "
                         "config.json")


def check_loading_info(name: str, head_class: str, info: dict) -> None:
    """transformers fills missing or misshapen weights with random numbers; refuse both."""
    mismatched = sorted(info.get("mismatched_keys", ()))
    if mismatched:
        key, in_file, in_model = mismatched[0]
        raise ValueError(f"the weights of {name!r} do not fit its config: {key} has shape {tuple(in_file)} in "
                         f"the checkpoint but {head_class} built from config.json needs {tuple(in_model)} "
                         "(e.g. id2label lists another number of labels). Fix config.json to match the weights")
    missing = sorted(info.get("missing_keys", ()))
    if missing:
        raise ValueError(f"{name!r} has no trained weights for {head_class} (missing: {', '.join(missing[:4])}"
                         f"{', ...' if len(missing) > 4 else ''}); it was not fine-tuned for this task. "
                         "Use a checkpoint trained for it")


def _is_finite(tensor: torch.Tensor) -> bool:
    """One float32 sum (a NaN or inf anywhere makes it non-finite, and it costs a fraction of an
    element-wise check); only a non-finite sum, which huge finite values could also give, is
    confirmed element by element."""
    return bool(torch.isfinite(tensor.sum(dtype=torch.float32))) or bool(torch.isfinite(tensor).all())


def nonfinite_tensors(model: torch.nn.Module) -> list[str]:
    """Names of the floating-point parameters and buffers holding a NaN or an infinity."""
    tensors = list(model.named_parameters()) + list(model.named_buffers())
    return [name for name, tensor in tensors
            if tensor.is_floating_point() and tensor.device.type != "meta" and not _is_finite(tensor.detach())]


def check_finite_weights(name: str, model: torch.nn.Module) -> None:
    """Weights with NaN or inf give NaN scores and garbage tokens without an error."""
    bad = nonfinite_tensors(model)
    if bad:
        raise ValueError(f"the weights of {name!r} hold NaN or infinite values in {', '.join(bad[:4])}"
                         f"{f' and {len(bad) - 4} more tensors' if len(bad) > 4 else ''}: the checkpoint is "
                         "damaged (or was saved after training diverged). Download or save it again")


def safetensors_problem(path: Path) -> str | None:
    """What is wrong with a .safetensors file's layout (header length, JSON header, data extent), or None.

    Reads only the header, so it is cheap for any file size.
    """
    size = path.stat().st_size
    with path.open("rb") as file:
        prefix = file.read(8)
        if len(prefix) < 8:
            return f"it has {size} bytes, fewer than its 8-byte header length"
        header_length = int.from_bytes(prefix, "little")
        if 8 + header_length > size:
            return f"it is truncated: its header alone needs {8 + header_length} bytes, the file has {size}"
        try:
            header = json.loads(file.read(header_length))
        except (UnicodeDecodeError, json.JSONDecodeError):
            return "its header is not valid JSON"
    ends = [entry["data_offsets"][1] for key, entry in header.items()
            if key != "__metadata__" and isinstance(entry, dict) and len(entry.get("data_offsets", ())) == 2]
    needed = 8 + header_length + max(ends, default=0)
    if needed > size:
        return f"it is truncated: its tensors need {needed} bytes, the file has {size}"
    return None


def damaged_weight_files(folder: Path) -> list[tuple[Path, str]]:
    """The model's .safetensors files in `folder` (model.safetensors or its shards) that cannot be read
    whole, with what is wrong with each."""
    found = [(path, safetensors_problem(path)) for path in sorted(folder.glob("model*.safetensors"))]
    return [(path, problem) for path, problem in found if problem]


def config_json_problem(folder: Path) -> str | None:
    """Why `folder`/config.json cannot be parsed, or None (also None when there is no such file)."""
    path = folder / "config.json"
    if not path.is_file():
        return None
    try:
        content = json.loads(path.read_bytes())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        return f"{path} is not valid JSON ({error})"
    return None if isinstance(content, dict) else f"{path} holds a JSON {type(content).__name__}, not an object"


def _embeddings(model) -> list:
    """The model's input and output embedding layers (a model class may define neither)."""
    layers = []
    for getter in ("get_input_embeddings", "get_output_embeddings"):
        try:
            layers.append(getattr(model, getter)())
        except (AttributeError, NotImplementedError):
            continue
    return layers


def _rows_of(layer) -> int | None:
    """The number of token ids a layer reads or scores: an Embedding's rows, a Linear head's outputs
    (a dynamically quantized int8 Linear keeps its weight behind a method, so the sizes are asked first)."""
    for size in ("num_embeddings", "out_features"):
        if isinstance(getattr(layer, size, None), int):
            return getattr(layer, size)
    weight = getattr(layer, "weight", None)
    return weight.shape[0] if isinstance(weight, torch.Tensor) else None


def _embedding_rows(model) -> int | None:
    """How many token ids the model can read and score: the smaller of its input and output embeddings."""
    rows = [_rows_of(layer) for layer in _embeddings(model) if layer is not None]
    rows = [count for count in rows if count is not None]
    return min(rows) if rows else None


SPECIAL_ID_FIELDS = ("bos_token_id", "eos_token_id", "pad_token_id", "decoder_start_token_id",
                     "forced_bos_token_id", "forced_eos_token_id")


def _special_ids(model) -> list[tuple[str, int]]:
    """(where, id) for every token id that the config and generation config name."""
    found = []
    for source_name, source in (("config", model.config), ("generation_config",
                                                          getattr(model, "generation_config", None))):
        for field in SPECIAL_ID_FIELDS:
            value = getattr(source, field, None) if source is not None else None
            for token_id in (value if isinstance(value, (list, tuple)) else [value]):
                if isinstance(token_id, int) and not isinstance(token_id, bool):
                    found.append((f"{source_name}.{field}", token_id))
    return found


ESSENTIAL_TOKENS = ("bos", "eos", "unk", "sep", "pad", "cls")  # the special tokens a tokenizer inserts itself


def _unreadable_tokens(tokenizer, rows: int) -> list[tuple[int, str]]:
    """(id, token) of the tokens past the embedding that texts or the tokenizer itself produce:
    ordinary tokens and the special tokens it inserts. A special token only the text can contain
    (BART-CNN's <mask>, id 50264 of an embedding of 50264 rows) is left to `check_input_ids`."""
    special = set(tokenizer.all_special_ids)
    essential = {getattr(tokenizer, f"{kind}_token_id", None) for kind in ESSENTIAL_TOKENS}
    return sorted((token_id, token) for token, token_id in tokenizer.get_vocab().items()
                  if not 0 <= token_id < rows and (token_id not in special or token_id in essential))


def check_token_ids(model, tokenizer) -> int | None:
    """Every id the tokenizer produces by itself and every special id of the config must be a row of
    the model's embedding; else the first text or step that meets one fails deep inside torch
    ("index out of range in self"). A tokenizer far smaller than the embedding is the wrong one too.
    Returns the number of rows (ids 0..rows-1 are readable), for `check_input_ids`."""
    rows = _embedding_rows(model)
    if rows is None:
        return None
    outside = _unreadable_tokens(tokenizer, rows)
    if outside:
        token_id, token = outside[0]
        raise ValueError(f"the tokenizer has {len(outside)} token(s) with ids past the model's {rows} embedding "
                         f"rows (first: {token!r} = id {token_id}): the model cannot read them. Use the "
                         "tokenizer saved with this model (tokenizer=), or one with the same vocabulary")
    if len(tokenizer) < rows // 2:
        raise ValueError(f"the tokenizer has {len(tokenizer)} tokens but the model has {rows} embedding rows: it "
                         "is not this model's tokenizer (or has no vocabulary). Use the tokenizer saved with this "
                         "model (tokenizer=)")
    for where, token_id in _special_ids(model):
        if token_id >= rows or (token_id < 0 and not where.endswith("pad_token_id")):  # some configs say pad -1
            raise ValueError(f"{where} = {token_id} is not a token id of this model (it has {rows} embedding "
                             f"rows, ids 0..{rows - 1}). Fix {where.split('.')[-1]} in the model's "
                             f"{where.split('.')[0]}.json, or set it on the model before use")
    return rows


def check_input_ids(ids_per_text, rows: int | None, tokenizer, argument: str = "inputs") -> None:
    """Refuse a text whose token ids include one past the embedding's `rows` (a special token the
    model was not trained with, written in the text), naming the text and the token."""
    if rows is None:
        return
    for index, ids in enumerate(ids_per_text):
        unreadable = [token_id for token_id in ids if token_id >= rows]
        if unreadable:
            token = tokenizer.convert_ids_to_tokens(int(unreadable[0]))
            raise ValueError(f"{argument}[{index}] contains {token!r} (token id {unreadable[0]}), a token this "
                             f"model has no embedding for (ids 0..{rows - 1}); remove it from the text")
