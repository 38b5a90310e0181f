"""The quantisation file (quant.yaml): a fixed-point format for each class of tensor, and for named tensors.

    rnncompile-quant: 1
    spec: lstm                        # the spec it was made for (a note; `rnncompile quantize` writes it)
    rounding: half_away_from_zero     # the only mode
    formats:                          # by class (rnncompile/quant/assign.py says which node is which)
      weights: q1.14                  # params of rank >= 2
      biases: q3.12                   # params of rank <= 1
      inputs: q3.12                   # the cell's float inputs
      state: q3.12                    # carried state (and the value that becomes it)
      activations: q0.15              # sigmoid, tanh and softmax outputs (within [-1, 1])
      elementwise: q3.12              # products, sums and relu of the rest
      accumulators: q8.23             # matrix products and the sums they feed (32 bits)
    tensors:                          # optional: one tensor's format, `<cell>.<name>`
      lstm.c: q4.11                   # a param, a state or a named value (let:, gates:)

A missing class takes its default (DEFAULTS). `--quant q15` (any one format) instead of a file gives that
format to every class but the accumulators, which get 32 bits with 8 more fraction bits (at most 24).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from rnncompile.errors import Diagnostic, DiagnosticSink, Location, SpecError, UsageError, did_you_mean

from .formats import FormatError, QFormat, parse

CLASSES = ("weights", "biases", "inputs", "state", "activations", "elementwise", "accumulators")
DEFAULTS = {"weights": "q1.14", "biases": "q3.12", "inputs": "q3.12", "state": "q3.12", "activations": "q0.15",
            "elementwise": "q3.12", "accumulators": "q8.23"}
ROUNDING = "half_away_from_zero"
KEYS = ("rnncompile-quant", "spec", "rounding", "formats", "tensors")


@dataclass(frozen=True)
class QuantConfig:
    formats: dict  # class -> QFormat
    tensors: dict = field(default_factory=dict)  # "cell.name" -> QFormat
    spec: str = ""
    file: str = ""
    where: dict = field(default_factory=dict, compare=False, repr=False)  # "cell.name" -> Location in the file

    def of_class(self, name: str) -> QFormat:
        return self.formats[name]

    def tensor(self, cell: str, name: str) -> QFormat | None:
        return self.tensors.get(f"{cell}.{name}")

    def key(self) -> tuple:
        """What decides the arithmetic (plans and builds are cached by it)."""
        tensors = tuple(sorted((k, str(v)) for k, v in self.tensors.items()))
        return tuple(str(self.formats[c]) for c in CLASSES), tensors

    def to_yaml(self) -> str:
        lines = ["rnncompile-quant: 1"]
        if self.spec:
            lines.append(f"spec: {self.spec}")
        lines += [f"rounding: {ROUNDING}        # the only mode", "formats:"]
        lines += [f"  {c}: {self.formats[c]}" for c in CLASSES]
        if self.tensors:
            lines.append("tensors:")
            lines += [f"  {k}: {v}" for k, v in sorted(self.tensors.items())]
        return "\n".join(lines) + "\n"


def uniform(text: str) -> QuantConfig:
    """`q15`-style: one format for every class but the accumulators (32 bits, 8 more fraction bits, <= 24)."""
    fmt = _parse_usage(text)
    n = min(fmt.n + 8, 24)
    formats = {c: fmt for c in CLASSES}
    formats["accumulators"] = QFormat(31 - n, n)
    return QuantConfig(formats, file=f"--quant {text}")


def _parse_usage(text: str) -> QFormat:
    try:
        return parse(text)
    except FormatError as e:
        raise UsageError(f"--quant {text}: {e}; or give a quant.yaml file (rnncompile quantize writes one)") from None


def load(text_or_path: str) -> QuantConfig:
    """A quant.yaml file, or one format (`q15`, `q3.12`) for `uniform`."""
    if not Path(text_or_path).exists() and text_or_path.strip().startswith("q") and "/" not in text_or_path \
            and not text_or_path.endswith((".yaml", ".yml", ".json")):
        return uniform(text_or_path)
    from rnncompile.source import load_file

    data, smap = load_file(text_or_path)
    sink = DiagnosticSink()
    for key in data:
        if key not in KEYS:
            sink.error(f"unknown key `{key}`", key, smap.key_loc((key,)), did_you_mean(key, KEYS, "top-level"))
    if data.get("rnncompile-quant") not in (None, 1):
        sink.error("this version reads `rnncompile-quant: 1`", "rnncompile-quant",
                   smap.value_loc(("rnncompile-quant",)))
    if "rounding" in data and data["rounding"] != ROUNDING:
        sink.error(f"rounding `{data['rounding']}` is not supported: the arithmetic rounds half away from zero",
                   "rounding", smap.value_loc(("rounding",)), f"write `rounding: {ROUNDING}` or leave it out")
    formats = {c: parse(DEFAULTS[c]) for c in CLASSES}
    given = data.get("formats", {})
    if not isinstance(given, dict):
        sink.error("`formats` must map tensor classes to formats", "formats", smap.value_loc(("formats",)),
                   "e.g. formats: {weights: q1.14, state: q3.12}")
        given = {}
    for name, value in given.items():
        if name not in CLASSES:
            sink.error(f"unknown tensor class `{name}`", f"formats.{name}", smap.key_loc(("formats", name)),
                       did_you_mean(name, CLASSES, "class"))
            continue
        fmt = _parse_located(value, ("formats", name), smap, sink)
        if fmt is not None:
            formats[name] = fmt
    tensors, where = {}, {}
    given = data.get("tensors", {})
    if not isinstance(given, dict):
        sink.error("`tensors` must map `<cell>.<name>` to formats", "tensors", smap.value_loc(("tensors",)),
                   "e.g. tensors: {lstm.c: q4.11}")
        given = {}
    for name, value in given.items():
        if str(name).count(".") != 1:
            sink.error(f"`{name}` does not name a tensor: write `<cell>.<name>` (e.g. `lstm.c`)", f"tensors.{name}",
                       smap.key_loc(("tensors", name)))
            continue
        fmt = _parse_located(value, ("tensors", name), smap, sink)
        if fmt is not None:
            tensors[name] = fmt
            where[name] = smap.key_loc(("tensors", name))
    sink.raise_if_errors()
    return QuantConfig(formats, tensors, str(data.get("spec", "")), str(text_or_path), where)


def _parse_located(value, path, smap, sink) -> QFormat | None:
    try:
        return parse(value)
    except FormatError as e:
        sink.error(str(e), ".".join(map(str, path)), smap.value_loc(path, width=len(str(value))))
        return None


def unknown_tensor(config: QuantConfig, name: str, known) -> SpecError:
    """A `tensors:` entry that names no tensor of the model."""
    loc = config.where.get(name) or Location(config.file, 0, 0)
    return SpecError([Diagnostic(f"`{name}` is no tensor of the model", f"tensors.{name}", loc,
                                 did_you_mean(name, known, "tensor"))])
