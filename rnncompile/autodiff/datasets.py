"""Training data of every kind, as the batches the training loop reads, with a held-out validation part.

    text     a .txt file for a sequence model with one token input: next-token prediction
             (inputs text[:-1], targets text[1:]) in `batch` contiguous streams, read in windows
    arrays   an .npz or .json of inputs by name, `target`, `lengths` or `mask` (`lengths.<input>`)
    trees    for a tree model (`fold:`): a tree bank, one tree per line (bracketed or JSON, as
             `rnncompile run --trees` reads it) or a .json {"trees": [...]}; the targets are the
             root's label (head at the root) or every node's (head at every node), class ids
    pairs    for an encoder-decoder trained by teacher forcing: a .tsv of `source<TAB>target` lines,
             each side tokenised with the spec's vocabulary, the target ended by its end token

`val_split` F holds out the last F of the sequences, trees or pairs (as Keras's
validation_split: the tail, before any shuffling), or the last F of the text's tokens.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import DataError, UsageError

MAX_TEXT_BYTES = 256 * 2**20
KINDS = ("text", "arrays", "trees", "pairs")


@dataclass
class Batch:
    inputs: dict
    target: np.ndarray | None  # None: an encoder-decoder's loss reads the target it is fed
    lengths: object = None  # [B], or a dict of them by input name
    stream_start: bool = True  # the first window of its streams (truncated BPTT starts from the start state)
    trees: object = None  # a tree model's batch: a Forest (inputs is then empty)

    @property
    def size(self) -> int:
        """Sequences (or trees) in the batch: what the batch's mean loss is a mean over."""
        if self.trees is not None:
            return self.trees.batch
        return len(next(iter(self.inputs.values())))


@dataclass
class TrainingSet:
    kind: str
    what: str  # for the run's first line: "5,000 tokens in 16 streams, ..."
    epoch: Callable  # epoch's batches: epoch(rng) -> list[Batch] (shuffled with rng where the kind shuffles)
    count: int  # batches per epoch
    validation: list[Batch] = field(default_factory=list)
    carry: bool = False  # truncated BPTT: the state carries from window to window of a stream
    note: str = ""  # words read as the unknown token


# -- dispatch ----------------------------------------------------------------------------------------------
def load(program, path, batch: int, steps: int | None = None, carry: bool = False,
         val_split: float | None = None, kind: str | None = None, loss: str = "xent") -> TrainingSet:
    """The training set in `path`, its kind by the file's suffix and the spec's model (a .txt is a tree bank for
    a tree model, a text otherwise)."""
    p = Path(path)
    tree = program.plan.kind == "tree"
    suffix = p.suffix.lower()
    if kind is None:
        if tree:
            kind = "trees"
        elif suffix == ".txt":
            kind = "text"
        elif suffix in (".tsv", ".tab"):
            kind = "pairs"
        elif suffix in (".npz", ".json"):
            kind = "arrays"
        else:
            what = f"`{p.suffix}`" if p.suffix else "no extension"
            raise UsageError(f"{p}: training data with {what}: give a .txt text (next-token), an .npz or .json "
                             f"dataset, a .tsv of source<TAB>target pairs, or (for a tree model) a tree bank")
    if tree and kind != "trees":
        raise UsageError(f"{program.checked.file} is a tree model: it trains on a tree bank (one tree per line, "
                         f"as `rnncompile run --trees` reads it), not a {kind} file")
    if kind == "trees" and not tree:
        raise UsageError(f"{p}: a tree bank trains a tree model (`model: {{fold: ...}}`); "
                         f"{program.checked.file} is a sequence model")
    if carry and kind != "text":
        raise UsageError(f"{p}: --bptt cuts a text into windows; {kind} are trained whole (leave --bptt out)")
    if kind == "text":
        return text_set(program, read_text_file(p), batch, steps, carry, val_split, str(p))
    if kind == "arrays":
        return arrays_set(program, read_training_file(program, p), batch, val_split, str(p), loss=loss)
    if kind == "trees":
        from ..trees.parse import read_trees

        return tree_set(program, read_trees(p), batch, val_split, str(p), loss)
    return pair_set(program, read_pairs(p), batch, val_split, str(p))


def _split(count: int, val_split: float | None, unit: str) -> int:
    """How many of `count` items the validation takes (0 without a split)."""
    if val_split is None:
        return 0
    if not (math.isfinite(val_split) and 0 < val_split < 1):
        raise UsageError(f"--val-split {val_split}: give a fraction between 0 and 1 (e.g. 0.1)")
    n = max(1, int(round(val_split * count)))
    if n >= count:
        raise DataError(f"--val-split {val_split:g} of {count} {unit} leaves none to train on; give more data "
                        f"or a smaller fraction")
    return n


# -- arrays: a dataset file ------------------------------------------------------------------------------
def read_training_file(program, path) -> dict:
    """An .npz (or .json) of inputs by name, `target` (not for an encoder-decoder: it learns the target it is
    fed), and `lengths` [B] or `mask` [B, T] (`lengths.<input>` or `mask.<input>` for one input)."""
    from ..data import read_arrays

    return check_training_arrays(program, dict(read_arrays(path)), str(path))


def check_training_arrays(program, raw: dict, path: str = "the data") -> dict:
    """Training arrays (as read_training_file reads them) checked against the spec; `path` names them in errors.
    A dataset's `lengths` may already be a dict by input name."""
    from ..data import lengths_from_mask

    raw = {k: (dict(v) if isinstance(v, dict) else np.asarray(v)) for k, v in raw.items()}
    own = {}
    for key in list(raw):
        base, _, name = key.partition(".")
        if base in ("lengths", "mask") and name:
            value = raw.pop(key)
            own[name] = lengths_from_mask(value) if base == "mask" else value.astype(np.int64)
    if "mask" in raw:
        raw["lengths"] = lengths_from_mask(raw.pop("mask"))
    if own:
        shared = raw.pop("lengths", None)
        raw["lengths"] = {**({n: shared for n in program.plan.inputs} if shared is not None else {}), **own}
    from .losses import train_settings

    decoder = program.plan.decoder is not None or train_settings(program, None, None, None)[3] is not None
    if "target" not in raw and not decoder:
        raise DataError(f"{path}: holds no `target` (the loss compares an output with it: token ids [B, T] for "
                        f"xent, values [B, T, ...] for mse); it holds {', '.join(raw) or 'nothing'}")
    names = list(program.plan.inputs)
    missing = [n for n in names if n not in raw]
    if missing:
        raise DataError(f"{path}: holds no input `{missing[0]}`; the spec's inputs: {', '.join(names)}")
    extra = [k for k in raw if k not in names + ["target", "lengths"] + list(program.plan.context)]
    if extra:
        raise DataError(f"{path}: unexpected `{extra[0]}`; a training file holds {', '.join(names)}, target, "
                        f"and lengths or mask")
    sizes = {k: len(v) for k, v in raw.items() if k in names + ["target"] or (k == "lengths" and
                                                                               not isinstance(v, dict))}
    sizes.update({f"lengths.{n}": len(v) for n, v in (raw["lengths"].items() if isinstance(raw.get("lengths"), dict)
                                                      else ())})
    if len(set(sizes.values())) > 1:
        first = next(iter(sizes))
        odd = next(k for k, n in sizes.items() if n != sizes[first])
        raise DataError(f"{path}: `{odd}` holds {sizes[odd]} sequences but `{first}` holds {sizes[first]}; every "
                        f"array of a training file has one row per sequence")
    for n in names:
        if program.plan.input_dtypes.get(n) == "token":
            if not np.array_equal(raw[n], np.round(raw[n])):
                raise DataError(f"{path}: `{n}` holds token ids, so whole numbers, but has {raw[n].dtype} values "
                                f"with fractions")
            raw[n] = raw[n].astype(np.int64)
    if "lengths" in raw and not isinstance(raw["lengths"], dict):
        raw["lengths"] = raw["lengths"].astype(np.int64)
    return raw


# -- text ----------------------------------------------------------------------------------------------------
def read_text_file(path) -> str:
    from ..files import read_bytes

    p = Path(path)
    data = read_bytes(p, MAX_TEXT_BYTES)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[:e.start].count(b"\n") + 1
        raise DataError(f"{p}:{line}: not UTF-8 text ({e.reason} at byte {e.start})") from None


def encode_text(program, text: str, where: str = "the text"):
    """(token input name, ids, note): an error names the line of `where` that holds the word."""
    from ..vocab import Vocab

    name = token_input(program)
    vocab = Vocab(program.vocab)
    try:
        ids = np.asarray(vocab.encode(text), np.int64)
    except DataError:
        raise DataError(_locate_unknown(vocab, text, where)) from None
    if len(ids) < 2:
        raise DataError(f"{where}: the text needs at least two tokens (inputs text[:-1], targets text[1:])")
    return name, ids, vocab.unknown_note()


def _locate_unknown(vocab, text: str, where: str) -> str:
    for n, line in enumerate(text.splitlines(keepends=True), start=1):
        if not line.strip() and vocab.level != "char":
            continue
        try:
            vocab.encode(line)
        except DataError as e:
            return f"{where}:{n}: {str(e).replace(' of the text', ' of the line')}"
    return f"{where}: the text is empty; give at least two tokens"


def token_input(program) -> str:
    infos = {n: program.plan.input_dtypes.get(n, "float") for n in program.plan.inputs}
    if program.vocab is None or len(infos) != 1 or next(iter(infos.values())) != "token":
        raise UsageError(f"{program.checked.file}: training on a text needs a spec with a vocabulary and one token "
                         f"input (a character or word predictor)")
    return next(iter(infos))


def windows(name: str, ids: np.ndarray, batch: int, steps: int, where: str = "the text") -> list[Batch]:
    """Next-token windows of `ids`: `batch` contiguous streams, each cut into windows of `steps`."""
    per_stream = (len(ids) - 1) // batch
    if per_stream < 1:
        raise DataError(f"{where}: {len(ids)} tokens are too few for {batch} streams of at least 2 "
                        f"(give a longer text or a smaller --batch)")
    x = ids[:batch * per_stream].reshape(batch, per_stream)
    y = ids[1:batch * per_stream + 1].reshape(batch, per_stream)
    return [Batch({name: x[:, s:s + steps]}, y[:, s:s + steps], None, s == 0) for s in range(0, per_stream, steps)]


def text_set(program, text: str, batch: int, steps: int | None, carry: bool, val_split: float | None,
             where: str = "the text") -> TrainingSet:
    name, ids, note = encode_text(program, text, where)
    steps = steps or program.checked.steps(None)
    held = _split(len(ids), val_split, "tokens")
    train_ids, val_ids = (ids[:-held], ids[-held:]) if held else (ids, None)
    if held and len(val_ids) < 2:
        raise DataError(f"--val-split {val_split:g} holds out {held} token(s) of {len(ids)}; the validation "
                        f"text needs at least two (give a larger fraction)")
    train = windows(name, train_ids, batch, steps, where)
    val = windows(name, val_ids, max(1, min(batch, (len(val_ids) - 1) // steps)), steps) if held else []
    what = (f"{len(train_ids):,} tokens in {batch} streams, windows of {steps} steps"
            + (" (truncated BPTT: the state carries across windows)" if carry else "")
            + (f"; {len(val_ids):,} held out" if held else ""))
    return TrainingSet("text", what, lambda rng: train, len(train), val, carry, note)


# -- arrays ----------------------------------------------------------------------------------------------
def _take(arrays: dict, idx) -> dict:
    out = {}
    for k, v in arrays.items():
        out[k] = {n: a[idx] for n, a in v.items()} if isinstance(v, dict) else v[idx]
    return out


def arrays_set(program, arrays: dict, batch: int, val_split: float | None, where: str = "the dataset",
               unit: str = "sequences", loss: str = "xent") -> TrainingSet:
    names = list(program.plan.inputs)
    if loss == "xent" and "target" in arrays:
        _check_target_ids(program, arrays["target"], where)
    count = len(arrays[names[0]])
    held = _split(count, val_split, unit)
    train = _take(arrays, np.arange(count - held)) if held else arrays
    val = _batches(_take(arrays, np.arange(count - held, count)), program, batch, None) if held else []
    n = count - held
    what = f"{n:,} {unit} in batches of {batch}" + (f"; {held:,} held out" if held else "")
    return TrainingSet("arrays", what, lambda rng: _batches(train, program, batch, rng), math.ceil(n / batch), val)


def _check_target_ids(program, target, where: str) -> None:
    """Cross-entropy targets are class ids of the head's one output: checked on the whole file, so an error
    names the sequence and step in it (a batch's would be shuffled)."""
    head = program.plan.head if program.plan.decoder is None else program.plan.decoder.head
    if head is None:
        return
    cell = program.cell(head.use)
    shapes = [cell.node(nid).shape for nid in cell.outputs().values()]
    if len(shapes) != 1 or len(shapes[0]) != 1:
        return
    n = shapes[0][0]
    target = np.asarray(target)
    bad = np.argwhere((target != np.round(target)) | (target < 0) | (target >= n))
    if len(bad):
        at = tuple(int(i) for i in bad[0])
        raise DataError(f"{where}: `target` holds class ids 0..{n - 1} (the head's output has {n}); "
                        f"target{list(at)} is {target[at]:g}")


def _batches(arrays: dict, program, batch: int, rng) -> list[Batch]:
    """Batches of `batch` sequences, shuffled with `rng` (in order without one)."""
    names = list(program.plan.inputs)
    from .losses import train_settings

    fed = program.plan.decoder is not None or train_settings(program, None, None, None)[3] is not None
    wanted = names + ([] if fed else ["target"])  # an encoder-decoder (or a `train: target:`) reads an input
    missing = [n for n in wanted if n not in arrays]
    if missing:
        raise DataError(f"the dataset has no `{missing[0]}` (it holds {', '.join(arrays) or 'nothing'}; a training "
                        f"set needs {', '.join(names)} and target)")
    count = len(arrays[names[0]])
    order = rng.permutation(count) if rng is not None else np.arange(count)
    out = []
    for start in range(0, count, batch):
        part = _take({k: v for k, v in arrays.items() if k in names + ["target", "lengths"]},
                     order[start:start + batch])
        out.append(Batch({n: part[n] for n in names}, part.get("target"), part.get("lengths")))
    return out


# -- trees ----------------------------------------------------------------------------------------------------
def tree_set(program, trees: list, batch: int, val_split: float | None, where: str = "the trees",
             loss: str = "xent") -> TrainingSet:
    """Trees with their labels as targets: the root's (head at the root) or every node's (head at every node)."""
    from ..trees.forest import Forest

    fold, head = program.plan.fold, program.plan.head
    if head is None:
        raise UsageError(f"{program.checked.file}: a tree model needs a head (`model: head:`) to train")
    if any("label" in reads for reads in fold.cell.reads.values()):
        raise UsageError(f"{program.checked.file}: cell `{fold.cell.name}` reads the nodes' labels as an input, so "
                         f"they cannot also be its training targets")
    cell = program.cell(head.use)
    outputs = {n: cell.node(nid).shape for n, nid in cell.outputs().items()}
    shape = next(iter(outputs.values())) if len(outputs) == 1 else None
    if loss != "xent" and shape != (1,):
        raise UsageError(f"{program.checked.file}: a tree's label is one number, so a {loss} loss needs a head with "
                         f"one output of one value; the head's outputs: "
                         + ", ".join(f"{n} {list(v)}" for n, v in outputs.items()))
    classes = shape[0] if loss == "xent" and shape else None
    per_node = head.at == "every_node"
    targets = [_tree_targets(t, per_node, classes, loss) for t in trees]
    from ..trees.run import check_forest
    from ..vocab import unknown_note

    everything = Forest.of(trees)  # every tree checked before the first step: arity, words (located errors)
    check_forest(everything, fold, program.vocab)
    note = unknown_note(program.vocab.unknown, everything.unknown) if program.vocab else ""
    held = _split(len(trees), val_split, "trees")
    n = len(trees) - held

    def batches(items: list[int], rng) -> list[Batch]:
        order = rng.permutation(items) if rng is not None else np.asarray(items)
        out = []
        for s in range(0, len(order), batch):
            idx = order[s:s + batch]
            out.append(Batch({}, np.concatenate([targets[i] for i in idx]), None, True,
                             Forest.of([trees[i] for i in idx])))
        return out

    val = batches(list(range(n, len(trees))), None) if held else []
    what = (f"{n:,} trees ({sum(len(trees[i].parent) for i in range(n)):,} nodes) in batches of {batch}, targets "
            f"the {'labels of every node' if per_node else 'root labels'}" + (f"; {held:,} held out" if held else ""))
    return TrainingSet("trees", what, lambda rng: batches(list(range(n)), rng), math.ceil(n / batch), val,
                       note=note)


def _tree_targets(tree, per_node: bool, classes: int | None, loss: str = "xent") -> np.ndarray:
    """Class ids (one per node, or the root's) from a tree's labels, or values [n, 1] for a loss other than
    xent; an error names the tree's line."""
    from ..trees.tree import token_text

    nodes = range(len(tree.parent)) if per_node else [int(np.flatnonzero(tree.parent < 0)[0])]
    out = []
    where = tree.where or "a tree"
    for i in nodes:
        label = tree.labels[i]
        what = "the root" if not per_node else f"node {i} (preorder)"
        if label is None:
            raise DataError(f"{where}: {what} has no label; the head {'at every node' if per_node else 'at the root'}"
                            f" learns {'every node' if per_node else 'the root'}'s label: write (LABEL child ...)")
        text = token_text(label)
        if loss != "xent":
            try:
                out.append([float(text)])
            except ValueError:
                raise DataError(f"{where}: {what} is labelled `{text}`, not a number (the {loss} loss's "
                                f"target)") from None
            continue
        if not text.lstrip("-").isdigit() or classes is None or not 0 <= int(text) < classes:
            limit = f"0..{classes - 1}" if classes else "a class id"
            raise DataError(f"{where}: {what} is labelled `{text}`, not a class id {limit} (the head's output "
                            f"has {classes} classes)")
        out.append(int(text))
    return np.asarray(out, np.int64 if loss == "xent" else np.float64)


# -- source / target pairs ------------------------------------------------------------------------------------
def read_pairs(path) -> list[tuple[str, str, str]]:
    """(source, target, where) of each `source<TAB>target` line (blank lines and # comments skipped)."""
    p = Path(path)
    text = read_text_file(p)
    out = []
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = line.split("\t")
        if len(parts) != 2 or not parts[0].strip() or not parts[1].strip():
            got = f"{len(parts)} fields" if len(parts) != 2 else "an empty side"
            raise DataError(f"{p}:{n}: a pair is `source<TAB>target`, one per line; this line has {got}: "
                            f"{line[:60]!r}")
        out.append((parts[0], parts[1], f"{p}:{n}"))
    if not out:
        raise DataError(f"{p}: holds no pairs (one `source<TAB>target` per line)")
    return out


def pair_arrays(program, pairs: list[tuple[str, str, str]]) -> tuple[dict, str]:
    """The pairs as an encoder-decoder's inputs (source and teacher-forcing target, padded) with their lengths."""
    from ..vocab import Vocab

    plan = program.plan
    dec = plan.decoder
    if dec is None or dec.feed != "target" or dec.target is None:
        raise UsageError(f"{program.checked.file}: source/target pairs train an encoder-decoder with teacher forcing "
                         f"(`decoder: {{feed: target, target: <an input>}}`)")
    if program.vocab is None:
        raise UsageError(f"{program.checked.file}: pairs of text need the spec's vocabulary to become token ids")
    sources = [n for n in plan.inputs if n != dec.target]
    if len(sources) != 1 or plan.input_dtypes.get(sources[0]) != "token":
        raise UsageError(f"{program.checked.file}: pairs of text need one token source input besides the target "
                         f"`{dec.target}`; the inputs: {', '.join(plan.inputs)}")
    src_name = sources[0]
    vocab = Vocab(program.vocab)
    end = vocab.index.get(vocab.end) if vocab.end else None
    src, tgt, unknown = [], [], []
    for s, t, where in pairs:
        try:
            a = vocab.encode(s)
            unknown += vocab.unknown_seen
            b = vocab.encode(t)
            unknown += vocab.unknown_seen
        except DataError as e:
            raise DataError(f"{where}: {str(e).replace(' of the text', ' of the pair')}") from None
        if end is not None and (len(b) == 0 or b[-1] != end):
            b = np.append(b, end)
        src.append(a)
        tgt.append(b)
    shared = str(plan.time_dims.get(src_name)) == str(plan.time_dims.get(dec.target))
    width_s, width_t = max(map(len, src)), max(map(len, tgt))
    if shared:
        width_s = width_t = max(width_s, width_t)
    arrays = {src_name: _pad(src, width_s), dec.target: _pad(tgt, width_t),
              "lengths": {src_name: np.asarray([len(a) for a in src], np.int64),
                          dec.target: np.asarray([len(b) for b in tgt], np.int64)}}
    from ..vocab import unknown_note

    return arrays, unknown_note(vocab.unknown, unknown)


def _pad(rows: list, width: int) -> np.ndarray:
    out = np.zeros((len(rows), width), np.int64)
    for i, r in enumerate(rows):
        out[i, :len(r)] = r
    return out


def pair_set(program, pairs: list, batch: int, val_split: float | None, where: str = "the pairs") -> TrainingSet:
    arrays, note = pair_arrays(program, pairs)
    out = arrays_set(program, arrays, batch, val_split, where, "pairs", "")
    out.kind, out.note = "pairs", note
    return out
