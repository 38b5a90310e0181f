"""A decoder that feeds back its own greedy token, as an ONNX Loop (the flow's `decode` op).

The Loop carries the decoder's state, the last token, which sequences are done and how many tokens each has
written; its body is the decoder cell and its head (onnx_cell.py), then the drivers' steps: the most likely
token (ArgMax takes the first of equal ones, as NumPy's argmax does), a done sequence keeps its state,
writes the end token and zero probabilities, and the loop stops early once every sequence has written the
end token (`stop_at_end`). At most the spec's `steps` tokens; the outputs are [B, N, ...] with N the steps
run. The encoder's outputs a decoder's attention reads (its `memory`) are read whole from the main graph,
padded with zeros to the cell's source length, with the mask of real source steps from `sequence_lens`.
"""
from __future__ import annotations

import numpy as np

from ... import flow
from ...drivers import start_and_end_ids
from .onnx_cell import Bound, per_example, write_cell
from .onnx_graph import BATCH, ExportError, Graph

DECODE_STEPS = "N"  # the symbolic length of what a decoder writes


def refusal(program, op: flow.Decode) -> str | None:
    """Why this decoder cannot be exported (None when it can)."""
    dec = op.decoder
    if dec.feed == "target":  # `run` always reads the target then: teacher forcing, a scan
        return None
    if dec.sample != "greedy":
        return ("it samples its tokens with NumPy's seeded generator, whose stream ONNX cannot reproduce (export "
                "a greedy decoder: `sample: greedy`)")
    for use in (dec.use, dec.head.use):
        cell = program.cell(use)
        if cell.nodes_of("step_index") or cell.nodes_of("seq_length"):
            return f"cell `{use.cell.name}` reads `t` or `seq_len`, which a decoder's single steps are not given"
    return None


def render_decode(ex, op: flow.Decode) -> None:
    """Writes the op's out (the head's outputs), final (the state) and tokens bundles into `ex`: by teacher
    forcing when the decoder reads a target (`run` needs one then), else the greedy Loop."""
    if op.decoder.feed == "target" and op.decoder.target in ex.bundles[flow.INPUT]:
        _teacher_forcing(ex, op)
    else:
        _greedy(ex, op)


def _teacher_forcing(ex, op: flow.Decode) -> None:
    """The decoder scanned over the start token and the target's steps but its last, its head at every step:
    the drivers' teacher forcing (padded target steps keep the state and give zeros)."""
    dec, g = op.decoder, ex.g
    val = ex.val_type
    target = ex.bundles[flow.INPUT][dec.target]
    start_id, _ = start_and_end_ids(ex.program.vocab)
    first = g.expand_to_batch(g.const(start_id, np.int64), ex.batch, (1,))
    earlier = g.op("Slice", [target.name, g.ints([0]), g.ints([-1]), g.ints([1])], "target_but_last")
    prev = g.op("Concat", [first, earlier], "previous_tokens", axis=1)
    cell = ex.program.cell(dec.use)
    memory = {n: val(v, tuple(cell.inputs[n].shape), False, "float") for n, v in _memory(ex, op, cell).items()}
    masked = ex.masked((dec.target,))
    outs, final = ex._scan(dec.use, {dec.token_input: val(prev, (), True, "token", target.steps)}, memory,
                           ex.bundles[op.state], masked, False, op.path)
    heads, _ = ex._scan(dec.head.use, outs, ex.bundles[flow.CONTEXT], {}, masked, False, op.path + ("head",))
    if masked:
        counts = g.op("Cast", [ex.lengths], "token_lengths", to=_int64())
    else:
        counts = g.op("Expand", [g.op("Shape", [target.name], "target_steps", start=1, end=2), ex.batch],
                      "token_lengths")
    ex.bundles[op.out] = {n: val(v.name, v.shape, True, v.dtype, target.steps) for n, v in heads.items()}
    ex.bundles[op.final] = final
    ex.bundles[op.tokens] = {"tokens": target, "lengths": val(counts, (), False, "token")}


def _greedy(ex, op: flow.Decode) -> None:
    """The Loop of greedy decoding."""
    from onnx import TensorProto

    dec, g, program = op.decoder, ex.g, ex.program
    cell, head = program.cell(dec.use), program.cell(dec.head.use)
    (pname, pnode), = ((n, head.node(i)) for n, i in head.outputs().items())
    start_id, end_id = start_and_end_ids(program.vocab)
    stop = end_id is not None and dec.stop_at_end
    scope = dec.use.prefix.rstrip(".") or dec.use.cell.name
    body = Graph(ex.names, scope + "/loop", ex.dtype)
    body.add_input(body.name("step"), np.int64, [])
    cond_in = body.add_input(body.name("go_on"), "bool", [])
    sources, carried = {}, []
    start = ex.bundles[op.state]
    for name, info in cell.states.items():
        sources[f"state:{name}"] = Bound(body.add_input(body.name(name), ex.dtype, [BATCH, *info.shape]), True)
        carried.append(start[name].name)
    token = body.add_input(body.name("token"), np.int64, [BATCH])
    done = body.add_input(body.name("done"), "bool", [BATCH])
    count = body.add_input(body.name("count"), np.int64, [BATCH])
    sources[f"input:{dec.token_input}"] = Bound(token, True)
    for name, value in _memory(ex, op, cell).items():
        sources[f"input:{name}"] = Bound(value, True)
    env = write_cell(cell, body, sources, ex.params_of(dec.use), ex.batch, once=g, where="model.decoder")
    outs = {n: Bound(per_example(body, env[i], cell.node(i).shape, ex.batch), True) for n, i in cell.outputs().items()}
    head_sources = {f"input:{n}": v for n, v in outs.items()}
    head_sources.update({f"input:{n}": Bound(v.name, True) for n, v in ex.bundles[flow.CONTEXT].items()})
    henv = write_cell(head, body, head_sources, ex.params_of(dec.head.use), ex.batch, once=g,
                      where="model.decoder.head")
    p = per_example(body, henv[head.outputs()[pname]], pnode.shape, ex.batch)

    def per_row(mask: str, rank: int) -> str:  # done [B] lined up with a value of `rank` axes after the batch
        return body.unsqueeze(mask, list(range(1, rank + 1))) if rank else mask

    drawn = body.op("ArgMax", [p], "drawn", axis=-1, keepdims=0)
    drawn = body.op("Where", [done, body.const(end_id if end_id is not None else 0, np.int64), drawn], "drawn")
    next_state = [body.op("Where", [per_row(done, len(info.shape)), sources[f"state:{n}"].name, env[i].name
                                    if env[i].batched else per_example(body, env[i], info.shape, ex.batch)],
                          f"{n}_next") for (n, info), i in zip(cell.states.items(), cell.updates().values())]
    probs = body.op("Where", [per_row(done, len(pnode.shape)), body.const(0), p], "probs")
    count_next = body.op("Add", [count, body.op("Cast", [body.op("Not", [done])], to=TensorProto.INT64)], "count")
    if stop:
        done_next = body.op("Or", [done, body.op("Equal", [drawn, body.const(end_id, np.int64)])], "done")
        left = body.op("Cast", [body.op("Not", [done_next])], to=TensorProto.INT64)
        go_on = body.op("Greater", [body.op("ReduceMax", [left], keepdims=0), body.const(0, np.int64)], "go_on")
    else:
        done_next, go_on = done, cond_in
    body.add_output(go_on, body.name("go_on_next"), "bool", [])
    for (n, info), value in zip(cell.states.items(), next_state):
        body.add_output(value, body.name(f"{n}_out"), ex.dtype, [BATCH, *info.shape])
    body.add_output(drawn, body.name("token_out"), np.int64, [BATCH])
    body.add_output(done_next, body.name("done_out"), "bool", [BATCH])
    body.add_output(count_next, body.name("count_out"), np.int64, [BATCH])
    body.add_output(probs, body.name(f"{pname}_step"), ex.dtype, [BATCH, *pnode.shape])
    body.add_output(drawn, body.name("token_step"), np.int64, [BATCH])

    first = g.expand_to_batch(g.const(start_id, np.int64), ex.batch, ())
    none_done = g.expand_to_batch(g.const(False, np.bool_), ex.batch, ())
    zero = g.expand_to_batch(g.const(0, np.int64), ex.batch, ())
    results = g.op("Loop", [g.const(dec.steps, np.int64), g.const(True, np.bool_), *carried, first, none_done, zero],
                   f"{scope}/decode", outputs=len(carried) + 5, body=body.make(body.scope))
    n = len(carried)
    finals = {name: results[k] for k, name in enumerate(cell.states)}
    lengths, all_probs, all_tokens = results[n + 2], results[n + 3], results[n + 4]
    all_probs = g.op("Transpose", [all_probs], f"{scope}/{pname}", perm=[1, 0] + list(range(2, 2 + len(pnode.shape))))
    all_tokens = g.op("Transpose", [all_tokens], f"{scope}/tokens", perm=[1, 0])
    val = ex.val_type
    ex.bundles[op.out] = {pname: val(all_probs, tuple(pnode.shape), True, "float", DECODE_STEPS)}
    ex.bundles[op.final] = {name: val(v, tuple(cell.states[name].shape), False, "float") for name, v in finals.items()}
    ex.bundles[op.tokens] = {"tokens": val(all_tokens, (), True, "token", DECODE_STEPS),
                             "lengths": val(lengths, (), False, "token")}


def _memory(ex, op: flow.Decode, cell) -> dict[str, str]:
    """The decoder's memory inputs (the encoder's outputs at every source step, zero-padded to the cell's source
    length) and its mask of real source steps, as main-graph values its body reads."""
    g, out = ex.g, {}
    if not op.memory and not op.memory_mask:
        return out
    cin = op.memory[0][0] if op.memory else op.memory_mask[0]
    want = cell.inputs[cin].shape[0]
    for name, read in op.memory:
        v = ex.bundles[read.bundle][read.member]
        steps = g.op("Shape", [v.name], "source_steps", start=1, end=2)
        missing = g.op("Sub", [g.ints([want]), steps], "missing_steps")
        pads = g.op("Concat", [g.ints([0, 0]), g.ints([0] * len(v.shape)), g.ints([0]), missing,
                               g.ints([0] * len(v.shape))], "pads", axis=0)
        out[name] = g.op("Pad", [v.name, pads], f"{name}_padded")
    if op.memory_mask is not None:
        name, sources = op.memory_mask
        if ex.lengths is not None and sources:
            real = g.op("Cast", [ex.lengths], "source_lengths", to=_int64())
        else:
            first = ex.bundles[flow.INPUT][sources[0]] if sources else None
            if first is None:
                raise ExportError("model.decoder: its memory mask reads no source input")
            real = g.op("Expand", [g.op("Shape", [first.name], "source_steps", start=1, end=2), ex.batch], "real")
        steps = g.unsqueeze(g.const(np.arange(want), np.int64), [0])
        live = g.op("Less", [steps, g.unsqueeze(real, [1])], "source_live")
        out[name] = g.op("Cast", [live], f"{name}", to=_float(ex.dtype))
    return out


def _int64() -> int:
    from onnx import TensorProto

    return TensorProto.INT64


def _float(dtype) -> int:
    from onnx import helper

    return helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
