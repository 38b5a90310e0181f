"""The spec's `train:` section checked against the model it trains.

    train:
      loss: xent            # xent | mse | bce (default: xent with a vocabulary, else mse)
      output: p             # the output the loss reads (default: the only one)
      target: tgt           # a model input to compare with (default: the training data's `target`)
      at: every_step        # every_step | last_step | every_node | root (default: where the output is)
      reduction: sum        # sum over steps, mean over the batch (default) | mean over every real step

The section only states what the model already fixes or picks among what it
offers, so every problem is a name that does not fit: an output or input the
model lacks (with a did-you-mean), a loss that cannot read the output
(cross-entropy of something that is not a softmax), a place the output is not
at (the loss at the last step of a head that runs at every step). Binary
cross-entropy of an output that is not a sigmoid is allowed, with a warning:
it takes log p and log(1 - p) of whatever the output holds.
"""
from __future__ import annotations

from .errors import DiagnosticSink, did_you_mean
from .ops import fmt_shape
from .plan import Plan
from .source import SourceMap, dotted
from .spec import LOSS_KINDS, LOSS_PLACES, LOSS_REDUCTIONS, Spec

DISTRIBUTIONS = ("softmax", "masked_softmax")  # ops whose value is a distribution over the last axis
ROOT = ("train",)


def default_kind(has_vocab: bool) -> str:
    return "xent" if has_vocab else "mse"


def model_outputs(plan: Plan) -> dict[str, tuple[tuple, str | None]]:
    """The outputs a loss can read: name -> (shape of one step, the op computing it, None when unknown)."""
    if plan.decoder is not None:
        cell = plan.decoder.head.use.cell
    elif plan.head is not None:
        cell = plan.head.use.cell
    elif plan.stack is None or not plan.stack.layers:
        return {}
    else:
        top = plan.stack.layers[-1]
        cell = top.uses[0].cell if len(top.uses) == 1 else None
        if cell is None:  # two directions merged: the op is the merge
            return {n: (tuple(s), None) for n, s in plan.stack.outputs.items()}
    out = {}
    for name, nid in cell.outputs().items():
        (arg,) = cell.args(nid)
        out[name] = (tuple(cell.node(nid).shape), cell.node(arg).op)  # a vector's softmax is over its one axis
    return out


def output_place(plan: Plan) -> str:
    """Where the model's output is, in the train section's words."""
    if plan.kind == "tree":
        return plan.head.at if plan.head is not None else "root"
    if plan.decoder is None and plan.head is not None and plan.head.at == "last":
        return "last_step"
    return "every_step"


def check_train(spec: Spec, plan: Plan, smap: SourceMap, sink: DiagnosticSink) -> None:
    train = spec.train

    def error(key, message, hint="", warn=False):
        path = ROOT + ((key,) if key else ())
        loc = smap.value_loc(path) if key else smap.key_loc(path)
        (sink.warn if warn else sink.error)(message, dotted(path), loc, hint)

    for key, allowed in (("loss", LOSS_KINDS), ("at", LOSS_PLACES), ("reduction", LOSS_REDUCTIONS)):
        value = getattr(train, key)
        if value is not None and value not in allowed:
            hint = did_you_mean(value, allowed)
            what = {"loss": "loss", "at": "loss place", "reduction": "reduction"}[key]
            error(key, f"unknown {what} `{value}`; use one of: {', '.join(allowed)}",
                  hint if hint.startswith("did you mean") else "")
            return
    if plan.kind == "tree" and plan.head is None:
        error("", "a tree model needs a head (`model: head:`) for its loss to read")
        return
    outputs = model_outputs(plan)
    if train.output is None and len(outputs) != 1:
        error("", f"the model has outputs {', '.join(outputs)}; say which one the loss reads",
              f"add `output: {next(iter(outputs))}` (or one of the others) under `train:`")
        return
    if train.output is not None and train.output not in outputs:
        error("output", f"the model has no output `{train.output}`",
              did_you_mean(train.output, outputs, "output"))
        return
    output = train.output or next(iter(outputs))
    shape, op = outputs[output]
    _check_place(train, plan, error)
    kind = train.loss or default_kind(spec.vocab is not None)
    where = "loss" if train.loss is not None else ""
    default = "" if train.loss is not None else " (the default loss with a vocabulary)"
    if kind == "xent" and (len(shape) != 1 or op not in DISTRIBUTIONS):
        what = f"is {fmt_shape(shape)}" if len(shape) != 1 else \
            f"is computed by `{op}`, not a softmax" if op is not None else "is not a softmax"
        error(where, f"cross-entropy{default} needs a distribution over tokens, but output `{output}` {what}",
              "write the output as softmax(...), or use `loss: mse` (or `bce` for a sigmoid)")
    elif kind == "bce" and op != "sigmoid":
        error(where, f"binary cross-entropy reads probabilities, but output `{output}` is not a sigmoid"
                     + (f" (it is computed by `{op}`)" if op else "")
                     + ": the loss takes log p and log(1 - p), NaN outside [0, 1]",
              "write the output as sigmoid(...): the loss is then computed from its argument, stably", warn=True)
    _check_target(train, plan, kind, output, shape, error)


def _check_place(train, plan: Plan, error) -> None:
    if train.at is None:
        return
    place = output_place(plan)
    if plan.kind == "tree" and train.at not in ("root", "every_node"):
        error("at", f"a tree model's loss is at `root` or `every_node`, not `{train.at}`",
              f"the head is at `{place}`: write `at: {place}`")
    elif plan.kind != "tree" and train.at not in ("every_step", "last_step"):
        error("at", f"a sequence model's loss is at `every_step` or `last_step`, not `{train.at}`",
              f"the output is at `{place}`: write `at: {place}`")
    elif train.at != place:
        if plan.kind == "tree":
            want = "every_node" if train.at == "every_node" else "root"
            error("at", f"the loss cannot be taken at `{train.at}`: the head runs at "
                        f"{'the root' if place == 'root' else 'every node'} (`model.head.at: {place}`)",
                  f"set the head's `at: {want}`, or write `at: {place}`")
        elif plan.decoder is not None:
            error("at", "a decoder's loss is at every step it produces", "write `at: every_step`")
        elif plan.head is None:
            error("at", "the loss cannot be taken at `last_step`: the model's output is at every step",
                  "add a head with `at: last` (many-to-one), or write `at: every_step`")
        else:
            head_at = plan.head.at
            error("at", f"the loss cannot be taken at `{train.at}`: the head runs at "
                        f"{'every step' if head_at == 'every_step' else 'the last step'} (`model.head.at: {head_at}`)",
                  f"set the head's `at: {'last' if train.at == 'last_step' else 'every_step'}`, or write "
                  f"`at: {place}`")


def _check_target(train, plan: Plan, kind: str, output: str, shape: tuple, error) -> None:
    dec = plan.decoder
    if dec is not None and dec.feed != "target":
        error("", "the decoder feeds back its own tokens, which are not differentiable: `train:` applies once it "
                  "is teacher-forced", "set the decoder's `feed: target` and `target: <an input>`", warn=True)
        return
    name = train.target
    if name is None:
        return
    if name not in plan.inputs:
        error("target", f"`{name}` is not a model input (the target is one, or the training data's own `target` "
                        f"when `target:` is left out)", did_you_mean(name, plan.inputs, "input"))
        return
    if dec is not None and name != dec.target:
        error("target", f"the decoder is teacher-forced with `{dec.target}`: its loss compares with that input, "
                        f"not `{name}`", f"write `target: {dec.target}`, or leave `target:` out")
        return
    if output_place(plan) != "every_step":
        error("target", f"input `{name}` is a sequence: a loss at the {output_place(plan).replace('_', ' ')} "
                        f"cannot compare with it", "leave `target:` out: the training data's `target` holds one "
                                                   "per sequence")
        return
    dtype, step = plan.input_dtypes.get(name, "float"), tuple(plan.inputs[name])
    if kind == "xent" and (dtype != "token" or step):
        error("target", f"cross-entropy compares with token ids, but input `{name}` holds "
                        f"{'floats' if dtype != 'token' else fmt_shape(step) + ' ids per step'}")
    elif kind != "xent" and dtype == "token":
        error("target", f"{kind} compares with values, but input `{name}` holds token ids",
              "use `loss: xent` for a distribution over tokens")
    elif kind != "xent" and step != shape:
        error("target", f"input `{name}` is {fmt_shape(step)} per step but output `{output}` is "
                        f"{fmt_shape(shape)}")
