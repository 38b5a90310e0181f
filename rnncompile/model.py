"""Building the model plan (rnncompile.plan) from a checked spec's `model:`, every problem located."""
from __future__ import annotations

import re

from .dims import MAX_RANK, MAX_SIZE, DimError, eval_dim, too_large
from .errors import DiagnosticSink, did_you_mean
from .graph import CellGraph
from .lower import CellLowering, ModelInputs
from .ops import fmt_shape
from .source import SourceMap, dotted
from .plan import CellUse, Decoder, Head, Layer, Plan, Stack
from .spec import CellSpec, HeadSpec, InputSpec, Spec
from .trees.lower import check_step_cell, lower_tree_cell, not_a_tree_cell
from .trees.model import build_fold


class PlanBuilder:
    def __init__(self, spec: Spec, dims: dict, cells: dict[str, CellGraph], smap: SourceMap, sink: DiagnosticSink,
                 invalid_dims: frozenset, dropped: frozenset = frozenset()):
        self.spec, self.dims, self.smap, self.sink, self.invalid = spec, dims, smap, sink, invalid_dims
        self.dropped = dropped  # paths whose values failed validation (already reported) and were removed
        self.lowered = {(name, tuple(sorted(dims.items()))): c for name, c in cells.items()}
        self.failed_cells = set()
        self.model_inputs = ModelInputs()  # what a state's `init:` may name; set by build() before any cell lowers

    def error(self, path, message, hint="", value=False, width=1):
        loc = self.smap.value_loc(path, 0, width) if value else self.smap.key_loc(path)
        self.sink.error(message, dotted(path), loc, hint)

    # -- cells ---------------------------------------------------------------
    def cell(self, name: str, dims: dict) -> CellGraph | None:
        key = (name, tuple(sorted(dims.items())))
        if key not in self.lowered:
            before = len(self.sink.errors)
            if self.spec.cells[name].kind == "tree":
                self.lowered[key] = lower_tree_cell(name, self.spec.cells[name], dims, self.smap, self.sink,
                                                    self.invalid)
            else:
                check_step_cell(name, self.spec.cells[name], self.smap, self.sink)
                self.lowered[key] = CellLowering(name, self.spec.cells[name], dims, self.smap, self.sink,
                                                 self.invalid, model_inputs=self.model_inputs).lower()
            if len(self.sink.errors) > before:
                self.failed_cells.add(name)
        return self.lowered[key]

    def cell_name(self, name, path) -> bool:
        if name not in self.spec.cells:
            self.error(path, f"no cell named `{name}`", did_you_mean(name, self.spec.cells, "cell"), True, len(name))
            return False
        return True

    def stateless(self, spec: HeadSpec | CellSpec, inputs: dict[str, tuple], base: tuple, name: str,
                  dims: dict | None = None, lowering=CellLowering) -> CellGraph:
        """A head or bridge: a cell without state, lowered for `dims` (the model's unless a decoder sets its own)."""
        fields = {"inputs": {n: InputSpec(shape=list(s)) for n, s in inputs.items()},
                  "params": spec.params, "let": spec.let, "outputs": spec.outputs}
        cell = CellSpec.model_construct(kind="step", description="", state={}, gates={}, update={}, **fields)
        return lowering(name, cell, self.dims if dims is None else dims, self.smap, self.sink, self.invalid,
                        base=base).lower()

    # -- the model ----------------------------------------------------------------
    def build(self) -> Plan | None:
        m = self.spec.model
        if m.fold is not None:
            return build_fold(self)
        inputs, dtypes, self.time_of = {}, {}, {}
        self.failed_inputs = set()
        for name, shape in m.input.items():
            path = ("model", "input", name)
            if not shape:
                self.error(path, "a sequence input needs a time axis first, e.g. [T, I]", value=True)
                continue
            time = shape[0]
            if isinstance(time, str) and not time.isidentifier():
                self.error(path + (0,), f"the time axis `{time}` must be a dim name or a number", value=True)
                continue
            self.time_of[name] = time
            step = self.shape(shape[1:], path, start=1)
            if step is not None:
                inputs[name] = step
            else:
                self.failed_inputs.add(name)
        context = {}
        for name, shape in m.context.items():
            step = self.shape(shape, ("model", "context", name))
            if step is not None:
                context[name] = step
        self.model_inputs = ModelInputs({n: context.get(n) for n in m.context}, frozenset(m.input))
        plan = Plan(inputs, dtypes, context, next(iter(self.time_of.values()), None), dict(self.time_of))

        modes = [k for k in ("scan", "layers", "encoder") if getattr(m, k) is not None]
        if len(modes) > 1:
            self.error(("model", modes[1]), f"`{modes[0]}` and `{modes[1]}` cannot be combined",
                       "use `layers` for a stack, `encoder`+`decoder` for sequence to sequence")
            return None
        if not modes and m.decoder is None:
            if not any(("model", k) in self.dropped for k in ("scan", "layers", "encoder", "decoder", "fold")):
                self.error(("model",), "the model runs nothing", "add `scan: <cell>` (or layers, or encoder/decoder)")
            return None
        if m.scan is not None or m.layers is not None:
            layers = m.layers if m.layers is not None else None
            plan.stack = self.stack(m.scan, layers, m.direction, m.merge, ("model",), list(inputs), inputs)
            if plan.stack and m.head is not None:
                plan.head = self.head(m.head, plan.stack.outputs, context, ("model", "head"), "head.")
            if m.decoder is not None:
                self.error(("model", "decoder"), "a decoder needs an `encoder:` (or no scan/layers, for "
                           "one-to-many generation from context inputs)")
        elif m.encoder is not None:
            enc = m.encoder
            if m.decoder is None:
                self.error(("model", "encoder"), "an encoder needs a `decoder:`")
                return None
            src = enc.input
            if src is None:
                seqs = [n for n in inputs if not (m.decoder.target == n)]
                src = seqs[0] if len(seqs) == 1 else None
                if src is None:
                    self.error(("model", "encoder"), "say which model input the encoder reads: `input: <name>`")
                    return None
            elif src not in inputs:
                self.error(("model", "encoder", "input"), f"no model input `{src}`",
                           did_you_mean(src, inputs, "input"), True, len(src))
                return None
            plan.stack = self.stack(enc.scan, enc.layers, enc.direction, enc.merge, ("model", "encoder"),
                                    [src], {src: inputs[src]}, prefix="encoder.")
            plan.kind = "seq2seq"
            if m.head is not None:
                self.error(("model", "head"), "in an encoder-decoder the head belongs under `decoder:`")
        if m.decoder is not None and (m.encoder is not None or not modes):
            if not modes:
                plan.kind = "generate"
            plan.decoder = self.decoder(m.decoder, plan, context)
        if plan.stack:
            first = plan.stack.layers[0]
            if not first.feed:
                self.error(("model",), f"cell `{first.uses[0].cell.name}` reads no input, so there is no sequence "
                                       f"to scan", "declare an input in the cell (inputs: {x: I}) and in the model "
                                                   "(input: {x: [T, I]})")
            for cin, src in first.feed.items():
                if cin in first.uses[0].cell.inputs:  # (else its declaration's error is reported)
                    plan.input_dtypes[src] = first.uses[0].cell.inputs[cin].dtype
        if plan.decoder and plan.decoder.target:
            plan.input_dtypes[plan.decoder.target] = "token"
            if inputs.get(plan.decoder.target) != ():
                self.error(("model", "input", plan.decoder.target), "a target sequence holds one token per step: "
                                                                     "declare it as [T]", value=True)
        for name in inputs:
            used = set()
            if plan.stack:
                used |= set(plan.stack.inputs)
            if m.decoder is not None and m.decoder.target:
                used.add(m.decoder.target)  # as declared: a decoder whose cell failed still reads its target
            if name not in used and plan.stack is not None:
                self.error(("model", "input", name), f"model input `{name}` is not read by any layer")
        return plan

    def shape(self, dims_list, path, start=0, dims=None):
        if len(dims_list) > MAX_RANK:
            self.error(path, f"a shape of {len(dims_list)} axes; shapes have at most {MAX_RANK}", value=True)
            return None
        out = []
        for i, d in enumerate(dims_list, start=start):
            try:
                n = eval_dim(d, dims or self.dims)
            except DimError as e:
                if e.undefined not in self.invalid:
                    self.sink.error(e.message, dotted(path + (i,)), self.smap.value_loc(path + (i,), e.pos, e.width),
                                    e.hint)
                return None
            if n < 1:
                self.error(path + (i,), f"size `{d}` is {n}; sizes must be positive", value=True)
                return None
            out.append(n)
        return tuple(out)

    def own_dims(self, dims: dict, path) -> bool:
        """A layer's or decoder's `dims:` hold sizes like the spec's."""
        for name, value in dims.items():
            if not 1 <= value <= MAX_SIZE:
                got = too_large(value) if value > MAX_SIZE else value
                self.error(path + ("dims", name), f"dim `{name}` must be a positive integer of at most "
                                                  f"{MAX_SIZE:,}, got {got}", value=True)
                return False
        return True

    def stack(self, scan, layers, direction, merge, path, input_names, available, prefix="") -> Stack | None:
        if layers is None:
            if scan is None:  # e.g. an encoder whose `scan:` is misspelt (reported as an unknown key)
                if (path + ("scan",)) not in self.dropped:
                    self.error(path, "nothing to scan: give `scan: <cell>` or `layers:`",
                               did_you_mean("", self.spec.cells, "cell"))
                return None
            layer_specs = [(scan, {}, direction, merge, path, prefix)]
        else:
            if not layers:
                self.error(path + ("layers",), "a stack needs at least one layer")
                return None
            layer_specs = [(ls.scan, ls.dims, ls.direction, ls.merge, path + ("layers", i), f"{prefix}layers.{i}.")
                           for i, ls in enumerate(layers)]
        out_layers = []
        below = dict(available)  # name -> shape of what the next layer can read
        below_name = "model input"  # who gives `below`, for errors
        for i, (scan, ldims, ldir, lmerge, lpath, lprefix) in enumerate(layer_specs):
            if not self.own_dims(ldims, lpath):
                return None
            per_direction = not isinstance(scan, str)
            if per_direction and ldir != "bidirectional":
                self.error(lpath + ("scan",), "a cell per direction (`scan: {forward: ..., reverse: ...}`) needs "
                                              "`direction: bidirectional`", "add direction: bidirectional, or "
                                              "scan one cell: scan: <cell>")
                return None
            named = [(scan.forward, lpath + ("scan", "forward")), (scan.reverse, lpath + ("scan", "reverse"))] \
                if per_direction else [(scan, lpath + ("scan",))]
            cells = []
            for scan_name, spath in named:
                found = self.layer_cell(scan_name, spath, below, below_name, ldims, lpath, i)
                if found is None:
                    return None
                cells.append(found)
            (cell, feed), *other = cells
            if other and not self.directions_fit(cells, named, lmerge, lpath):
                return None
            if ldir == "bidirectional":
                rcell = other[0][0] if other else cell
                uses = [CellUse(cell, f"{lprefix}forward."), CellUse(rcell, f"{lprefix}reverse.", reverse=True)]
            else:
                uses = [CellUse(cell, lprefix, reverse=ldir == "reverse")]
            outputs = {}
            for name, nid in cell.outputs().items():
                shape = cell.node(nid).shape
                rshape = uses[-1].cell.node(uses[-1].cell.outputs()[name]).shape
                if len(uses) == 1:
                    outputs[name] = shape
                elif lmerge == "concat":
                    if not shape:
                        self.error(lpath + ("merge",), f"output `{name}` is a scalar; concat needs vectors",
                                   "use merge: sum or mean")
                        return None
                    outputs[name] = shape[:-1] + (shape[-1] + rshape[-1],)
                elif lmerge in ("sum", "mean"):
                    outputs[name] = shape
                else:
                    if i != len(layer_specs) - 1:
                        self.error(lpath + ("merge",), "merge: separate is only possible on the top layer",
                                   "join the directions with concat, sum or mean to feed the next layer", True)
                        return None
                    outputs[f"{name}_forward"] = shape
                    outputs[f"{name}_reverse"] = rshape
            if ldir != "bidirectional" and (layers is not None and layers[i].merge != "concat"):
                self.sink.warn("`merge` only matters for a bidirectional layer", dotted(lpath + ("merge",)),
                               self.smap.key_loc(lpath + ("merge",)))
            out_layers.append(Layer(uses, lmerge if ldir == "bidirectional" else "none", feed, outputs, lpath))
            below = outputs
            how = {"bidirectional": f", bidirectional, merge: {lmerge}", "reverse": ", reverse"}.get(ldir, "")
            cell_names = " and ".join(f"`{n}`" for n, _ in named)
            below_name = f"layer {i} (cell{'s' if per_direction else ''} {cell_names}{how})"
        return Stack(out_layers, list(input_names))

    def layer_cell(self, scan_name: str, spath, below: dict, below_name: str, ldims: dict, lpath, i: int):
        """One layer's cell, lowered for what is below it: (graph, feed), or None (reported)."""
        if not self.cell_name(scan_name, spath) or not not_a_tree_cell(self, scan_name, spath):
            return None
        cspec = self.spec.cells[scan_name]
        feed = self.feed(cspec, below, lpath, scan_name)
        if feed is None:
            return None
        if i == 0 and not self.one_time_axis(feed, lpath, scan_name):
            return None
        dims = {**self.dims, **ldims}
        # a layer's input size follows what is below it, unless the layer sets that dim itself
        for cin, src in feed.items():
            declared = cspec.inputs[cin].shape
            if len(declared) == 1 and isinstance(declared[0], str) and declared[0].isidentifier() \
                    and declared[0] not in ldims and len(below[src]) == 1:
                dims[declared[0]] = below[src][0]
        if scan_name in self.failed_cells:
            return None
        cell = self.cell(scan_name, dims)
        if scan_name in self.failed_cells:
            return None
        ok = True
        for cin, src in feed.items():
            want = cell.inputs[cin].shape if cin in cell.inputs else None
            if want is not None and want != below[src]:
                self.wrong_size(lpath, i, scan_name, cin, want, below_name, src, below[src], dims, ldims)
                ok = False
        return (cell, feed) if ok else None

    def directions_fit(self, cells: list, named: list, merge: str, lpath) -> bool:
        """The two cells of a layer's directions read the same inputs and give outputs `merge` can join
        (and states of the same names, for a decoder's summary)."""
        (fwd, ffeed), (rev, rfeed) = cells
        (fname, _), (rname, rpath) = named
        if ffeed != rfeed:
            self.error(rpath, f"cells `{fname}` and `{rname}` of one layer read different inputs "
                              f"({', '.join(ffeed)} and {', '.join(rfeed)})", "both directions read the same "
                                                                             "sequence: name their inputs alike")
            return False
        fo, ro = fwd.outputs(), rev.outputs()
        if set(fo) != set(ro):
            self.error(rpath, f"cells `{fname}` and `{rname}` give different outputs ({', '.join(fo)} and "
                              f"{', '.join(ro)}), so their directions cannot be merged",
                       "give both cells outputs of the same names")
            return False
        for name in fo:
            fs, rs = fwd.node(fo[name]).shape, rev.node(ro[name]).shape
            joinable = fs[:-1] == rs[:-1] if merge == "concat" else merge == "separate" or fs == rs
            if not joinable:
                self.error(lpath + ("merge",), f"output `{name}` is {fmt_shape(fs)} forward (`{fname}`) and "
                                               f"{fmt_shape(rs)} reverse (`{rname}`); merge: {merge} needs "
                                               + ("the same leading axes" if merge == "concat" else "one shape"),
                           "use merge: concat (widths may differ) or separate, or give both the same size")
                return False
        return True

    def one_time_axis(self, feed: dict, path, scan_name: str) -> bool:
        """The model inputs one scan reads share one time axis (different scans may each have their own)."""
        axes = {src: self.time_of[src] for src in feed.values() if src in self.time_of}
        if len(set(map(str, axes.values()))) <= 1:
            return True
        listed = ", ".join(f"`{src}` [{axis}, ...]" for src, axis in axes.items())
        first = next(iter(axes.values()))
        odd = next(src for src, axis in axes.items() if str(axis) != str(first))
        self.error(("model", "input", odd, 0), f"cell `{scan_name}` reads {listed}: the inputs of one scan share "
                                              f"one time axis",
                   "give them the same time dim and each its own real length at run time (`lengths.<input>`); "
                   "an encoder's source and a decoder's target may each have their own time axis", value=True)
        return False

    def wrong_size(self, lpath, i, scan_name, cin, want, below_name, src, got, dims, ldims) -> None:
        """A layer's input does not fit what is below it: name both sides and both sizes, and
        suggest the dim that would make them fit."""
        declared = self.spec.cells[scan_name].inputs[cin].shape
        expr = declared[0] if len(declared) == 1 and isinstance(declared[0], str) else None
        this = f"layer {i} (cell `{scan_name}`)" if len(lpath) > 1 and lpath[-2] == "layers" else f"cell `{scan_name}`"
        given = f"`{src}` has {_size(got)}" if i == 0 else f"gives `{src}` of {_size(got)}"
        message = f"{this} takes `{cin}` of {_size(want)}{f' (`{expr}`)' if expr else ''}, but {below_name} {given}"
        fit = _dim_that_fits(expr, got[0], dims) if expr and len(got) == 1 else None
        if i == 0:
            self.error(lpath, message, f"check model.input, or the size the cell declares for `{cin}`")
        elif fit and fit[0] == expr and expr in ldims:
            self.error(lpath + ("dims", expr), message, f"set `{expr}: {got[0]}` in layer {i}'s `dims:`, or leave "
                                                        f"`{expr}` out: a layer's input size follows the layer below",
                       value=True, width=len(str(ldims[expr])))
        elif fit:
            self.error(lpath, message, f"set `{fit[0]}: {fit[1]}` in layer {i}'s `dims:` "
                                       f"(then `{cin}` is `{expr}` = {got[0]})")
        else:
            self.error(lpath, message, f"resize layer {i - 1} to give {_size(want)}, or change the size cell "
                                       f"`{scan_name}` declares for `{cin}`")

    def feed(self, cspec: CellSpec, below: dict, path, scan_name) -> dict | None:
        cins = list(cspec.inputs)
        if len(cins) == 1 and len(below) == 1:
            return {cins[0]: next(iter(below))}
        feed = {}
        if set(cins) & self.failed_inputs or (len(cins) == 1 and not below and self.failed_inputs):
            return None  # its shape error is already reported
        if not below and ("model", "input") in self.dropped:
            return None  # `input:` itself was invalid, and is reported
        for cin in cins:
            if cin not in below:
                self.error(path, f"nothing feeds input `{cin}` of cell `{scan_name}`",
                           "inputs are matched by name; available here: " + ", ".join(below) if below else
                           f"declare it under the model's `input:`, e.g. input: "
                           f"{{{cin}: [{', '.join(['T'] + [str(d) for d in cspec.inputs[cin].shape])}]}}")
                return None
            feed[cin] = cin
        return feed

    def head(self, spec: HeadSpec, tops: dict, context: dict, path, prefix, dims: dict | None = None) -> Head | None:
        if spec.at in ("root", "every_node"):
            self.error(path + ("at",), f"`at: {spec.at}` is for tree models (`fold:`); over a sequence a head "
                                       f"is at every_step or last", value=True, width=len(spec.at))
            return None
        clash = set(tops) & set(context)
        if clash:
            self.error(path, f"`{', '.join(sorted(clash))}` is both a layer output and a context input")
            return None
        before = len(self.sink.errors)
        cell = self.stateless(spec, {**tops, **context}, path, prefix.rstrip("."), dims)
        if len(self.sink.errors) > before:
            return None
        return Head(CellUse(cell, prefix), spec.at)

    def decoder(self, spec, plan: Plan, context: dict) -> Decoder | None:
        path = ("model", "decoder")
        if not self.cell_name(spec.scan, path + ("scan",)) or not not_a_tree_cell(self, spec.scan, path + ("scan",)):
            return None
        if self.spec.vocab is None:
            self.error(path, "a decoder produces tokens, so the spec needs a `vocab:`")
            return None
        if not self.own_dims(spec.dims, path):
            return None
        dims = {**self.dims, **spec.dims}
        cell = self.cell(spec.scan, dims)
        if spec.scan in self.failed_cells:
            return None
        tokens = [n for n, i in cell.inputs.items() if i.dtype == "token"]
        for cin in spec.memory:
            if cin not in cell.inputs:
                self.error(path + ("memory", cin), f"cell `{spec.scan}` has no input `{cin}` for the memory to fill",
                           did_you_mean(cin, cell.inputs, "input"))
                return None
        attended = set(spec.memory) | ({spec.memory_mask} if spec.memory_mask else set())
        rest = [n for n in cell.inputs if n not in attended]
        if len(rest) != 1 or len(tokens) != 1 or rest != tokens:
            self.error(path + ("scan",), f"a decoder cell takes one token input (its previous output) and the "
                                         f"inputs its `memory:` fills; `{spec.scan}` takes "
                                         f"{', '.join(cell.inputs) or 'none'}",
                       "declare it as `inputs: {y_prev: token}` (attention: also `enc: [S, H]`, filled by "
                       "`memory: {enc: h}` with the encoder's outputs at every source step)", True, len(spec.scan))
            return None
        if attended and not self.memory_fits(spec, cell, plan, path):
            return None
        try:
            steps = eval_dim(spec.steps, dims)
        except DimError as e:
            self.error(path + ("steps",), e.message, e.hint, True)
            return None
        if steps < 1:
            self.error(path + ("steps",), "a decoder needs at least one step", value=True)
            return None
        target = None
        if spec.feed == "target":
            target = spec.target
            if target is None or target not in plan.inputs:
                self.error(path + ("target",) if target else path, "teacher forcing needs `target:`, "
                           "a model input holding the target tokens" if target is None else f"no model input `{target}`",
                           did_you_mean(target, plan.inputs, "input") if target else "")
                return None
        head = self.head(spec.head, {n: cell.node(o).shape for n, o in cell.outputs().items()}, context,
                         path + ("head",), "decoder.head.", dims)
        if head is None:
            return None
        outs = list(head.use.cell.outputs().items())
        vocab_size = self.dims.get(self.spec.vocab.dim)
        if len(outs) != 1 or head.use.cell.node(outs[0][1]).shape != (vocab_size,):
            self.error(path + ("head",), f"a decoder head produces one distribution over the {vocab_size} tokens",
                       "e.g. outputs: {p: softmax(W_p @ h + b_p)}")
            return None
        init = self.bridge(spec, cell, plan, context, path, dims)
        if init is None:
            return None
        return Decoder(CellUse(cell, "decoder."), tokens[0], init, spec.feed, target, steps, head, spec.sample,
                       spec.temperature, spec.top_k, spec.stop_at_end, dict(spec.memory), spec.memory_mask)

    def memory_fits(self, spec, cell: CellGraph, plan: Plan, path) -> bool:
        """A decoder's memory (attention): each cell input it fills is an encoder output at every source step,
        [S, ...] with S the source's time axis; the mask input is [S]."""
        if plan.stack is None:
            if self.spec.model.encoder is None:  # (else the encoder's own error is reported)
                self.error(path + ("memory",), "`memory:` reads the encoder's outputs, and this model has no encoder")
            return False
        (src,) = plan.stack.inputs[:1] or (None,)
        axis = plan.time_dims.get(src)
        try:
            steps = axis if isinstance(axis, int) else eval_dim(str(axis), self.dims)
        except DimError:
            self.error(("model", "input", src, 0), f"attention reads every source step, so the source's time axis "
                                                   f"`{axis}` needs a size", f"set it under dims: (e.g. {axis}: 20); "
                                                                             f"shorter sources are padded and given "
                                                                             f"their lengths", value=True)
            return False
        tops = plan.stack.outputs
        for cin, out in spec.memory.items():
            mpath = path + ("memory", cin)
            if out not in tops:
                self.error(mpath, f"the encoder gives no output `{out}`", did_you_mean(out, tops, "output"), True,
                           len(out))
                return False
            want = (steps,) + tuple(tops[out])
            if cell.inputs[cin].shape != want:
                self.error(mpath, f"input `{cin}` of cell `{spec.scan}` is {fmt_shape(cell.inputs[cin].shape)}, but "
                                  f"the encoder's `{out}` at every source step is {fmt_shape(want)}",
                           f"declare it as {cin}: [{axis}, {', '.join(map(str, tops[out]))}]", True, len(out))
                return False
        if spec.memory_mask:
            mask = spec.memory_mask
            if mask not in cell.inputs:
                self.error(path + ("memory_mask",), f"cell `{spec.scan}` has no input `{mask}` for the mask",
                           did_you_mean(mask, cell.inputs, "input"), True, len(mask))
                return False
            if cell.inputs[mask].shape != (steps,):
                self.error(path + ("memory_mask",), f"the mask input `{mask}` is {fmt_shape(cell.inputs[mask].shape)}"
                                                    f"; it holds one 1 or 0 per source step",
                           f"declare it as {mask}: [{axis}]", True, len(mask))
                return False
        return True

    def bridge(self, spec, cell: CellGraph, plan: Plan, context: dict, path, dims: dict):
        if spec.init == "zeros":
            return "zeros"
        summary = plan.stack.final_states() if plan.stack else {}
        if spec.init == "encoder":
            if plan.stack is None:
                if self.spec.model.encoder is None:  # (else the encoder's own error is reported)
                    self.error(path + ("init",), "there is no encoder to start from", "use init: zeros, or "
                               "expressions over the context inputs", True)
                return None
            for name, st in cell.states.items():
                if name not in summary:
                    self.error(path + ("init",), f"the encoder has no final state `{name}` for the decoder",
                               "give init expressions, e.g. {h: tanh(W @ encoder.h)}", True)
                    return None
                if summary[name] != st.shape:
                    self.error(path + ("init",), f"encoder state `{name}` is {fmt_shape(summary[name])}, but the "
                                                 f"decoder's is {fmt_shape(st.shape)}",
                               f"project it: init: {{{name}: tanh(W_c @ encoder.{name})}} with W_c under params", True)
                    return None
            return "encoder"
        extra = [s for s in spec.init if s not in cell.states]
        if extra:  # states left out keep their own init (zeros unless the cell says otherwise)
            self.error(path + ("init", extra[0]), f"`{extra[0]}` is not a state of cell `{spec.scan}`",
                       did_you_mean(extra[0], cell.states, "state"))
            return None
        inputs = {f"encoder.{n}": s for n, s in summary.items()}
        inputs.update(context)
        bridge_spec = HeadSpec.model_construct(at="every_step", params=spec.params, let={}, outputs=dict(spec.init))
        before = len(self.sink.errors)
        bridge = self.stateless(bridge_spec, inputs, path, "init", dims, _BridgeLowering)
        if len(self.sink.errors) > before:
            return None
        for name, nid in bridge.outputs().items():
            if bridge.node(nid).shape != cell.states[name].shape:
                self.error(path + ("init", name), f"init of `{name}` has shape {fmt_shape(bridge.node(nid).shape)}, "
                                                  f"but the state is {fmt_shape(cell.states[name].shape)}", value=True)
                return None
        return CellUse(bridge, "decoder.init.")


class _BridgeLowering(CellLowering):
    """A decoder's init expressions, lowered as the outputs of a stateless cell: errors point at `init:`."""

    def error(self, path, *args, **kwargs):
        super().error(_init_path(path), *args, **kwargs)

    def warn(self, path, *args, **kwargs):
        super().warn(_init_path(path), *args, **kwargs)


def _init_path(path) -> tuple:
    path = tuple(path)
    return ("init",) + path[1:] if path[:1] == ("outputs",) else path


def _size(shape: tuple) -> str:
    return f"size {shape[0]}" if len(shape) == 1 else f"shape {fmt_shape(shape)}"


def _dim_that_fits(expr: str, size: int, dims: dict) -> tuple[str, int] | None:
    """A dim of `expr` and the value that makes `expr` equal `size`, if one does (e.g. `2 * H`, 32 -> H: 16)."""
    def at(name, n):
        return eval_dim(expr, {**dims, name: n})

    for name in dict.fromkeys(re.findall(r"[A-Za-z_]\w*", expr)):
        try:  # sizes are mostly linear in a dim (2 * H, H + I): solve from two points, then check
            slope = at(name, 2) - at(name, 1)
            if slope and (size - at(name, 1)) % slope == 0:
                n = 1 + (size - at(name, 1)) // slope
                if n >= 1 and at(name, n) == size:
                    return name, n
        except DimError:
            continue
    return None


def build_plan(spec: Spec, dims, cells, smap, sink, invalid_dims=frozenset()) -> Plan | None:
    return PlanBuilder(spec, dims, cells, smap, sink, invalid_dims).build()
