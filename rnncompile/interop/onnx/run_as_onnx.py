"""Running an imported spec on the ONNX model's own feeds, each output shaped as ONNX gives it (for checking)."""
from __future__ import annotations

import numpy as np

from .imported import Imported


def run_like_onnx(imported: Imported, program, feeds: dict, params: dict, **run_args) -> dict:
    """Run `program` (the imported spec, compiled) on the ONNX model's feeds; return each ONNX output
    shaped as ONNX gives it. What `rnncompile import` claims, stated as code."""
    from ... import api

    inputs, context, lengths = {}, {}, None
    for onnx_name, (spec_name, order) in imported.inputs.items():
        a = np.asarray(feeds[onnx_name])
        inputs[spec_name] = np.swapaxes(a, 0, 1) if order == "TB" else a
    for onnx_name, (ctx, layout) in imported.context.items():
        a = np.asarray(feeds[onnx_name])  # [1, B, H], or [B, 1, H] for layout 1
        context[ctx] = a[0] if layout == 0 else a[:, 0]
    if imported.lengths:
        lengths = np.asarray(feeds[imported.lengths])
    res = api.run(program, inputs=inputs, params=params, lengths=lengths, context=context or None, **run_args)
    out = {}
    for onnx_name, desc in imported.outputs.items():
        if desc[0] == "state":
            arr = np.stack([res.final_state[k] for k in desc[1]])  # [D, B, H]
            out[onnx_name] = _to_axes(arr, ("D", "B", "F"), desc[2])
        else:
            arr = res.outputs[desc[1]]
            axes = desc[2]
            have = ("B", "F") if len(arr.shape) == 2 else ("B", "T", "F")
            if "D" in axes and "DF" not in axes:  # ONNX's Y: [.., D, .., H] from [B, T, D*H]
                d = arr.shape[-1] // imported.top_hidden
                arr = arr.reshape(arr.shape[:-1] + (d, arr.shape[-1] // d))
                have = have[:-1] + ("D", "F")
            out[onnx_name] = _to_axes(arr, have, axes)
    return out


def _to_axes(arr, have, want):
    """Permute `arr` (axes named `have`) into `want`, inserting unit axes (U) and mapping DF to F."""
    have = ["F" if a == "DF" else a for a in have]
    want_clean = ["F" if a == "DF" else a for a in want if a != "U"]
    if sorted(want_clean) != sorted(have):
        missing = [a for a in have if a not in want_clean]
        for a in missing:  # a unit axis ONNX squeezed away (D of one direction)
            arr = arr.take(0, axis=have.index(a))
            have.remove(a)
    arr = np.transpose(arr, [have.index(a) for a in want_clean])
    shape = []
    it = iter(arr.shape)
    for a in want:
        shape.append(1 if a == "U" else next(it))
    return arr.reshape(shape)
