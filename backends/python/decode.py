"""The exported `run` of a decoder (an encoder-decoder, or a generator from context): the encoder's
layers as a sequence model's, then the decoder started from the encoder's summary, its zeros or a
bridge, and run by teacher forcing (the target fed in, one scan) or by feeding back each step's own
token (greedy argmax, or sampling with NumPy's seeded generator), as `rnncompile.drivers.Executable`
does: a sequence stops after the end token, and a finished one repeats it with a zero distribution.
"""
from __future__ import annotations

import inspect

from rnncompile.drivers import sample_tokens, start_and_end_ids

from .cell import IND
from .names import comment, string

DECODE_HELPERS = {
    "lengths_for": '''
def lengths_for(lengths, names):
    """The lengths of the inputs one scan reads: the one array every input shares, or theirs by name."""
    if not isinstance(lengths, dict):
        return None if lengths is None else np.asarray(lengths)
    given = {n: np.asarray(lengths[n]) for n in names if n in lengths}
    if not given:
        return None
    first = next(iter(given.values()))
    if len(given) < len(names) or any(not np.array_equal(first, v) for v in given.values()):
        raise ValueError("inputs " + ", ".join(names) + " are read by one layer, so they need the same "
                         "lengths")
    return first
''',
    # the drivers' own function, so a generated decoder draws exactly as `rnncompile run` does
    "pick_tokens": "\n" + inspect.getsource(sample_tokens).replace("def sample_tokens(", "def pick_tokens(", 1),
}


class DecodeWriter:
    """Writes `run` for plan kinds seq2seq and generate; `w` is the ModelWriter (cells, layers, helpers)."""

    def __init__(self, w):
        self.w, self.plan, self.dec = w, w.plan, w.plan.decoder

    def signature(self) -> str:
        return ('def run(params, inputs=None, state=None, lengths=None, context=None, dtype="float32", steps=None,\n'
                f'        seed=0, sample={string(self.dec.sample)}, temperature={self.dec.temperature!r}, '
                f'top_k={self.dec.top_k!r}):')

    def run(self) -> str:
        plan, dec, w = self.plan, self.dec, self.w
        self.w.helpers |= {"lengths_for", "pick_tokens"}
        feeds = f" (or, given `{dec.target}`, teacher forcing)" if dec.feed == "target" else ""
        lines = [self.signature(),
                 f'{IND}"""Decode a batch: see the module docstring for the keys and shapes. Feeds back each step\'s',
                 f"{IND}token{feeds}; `steps` tokens at most (default {dec.steps}); sample: greedy or sample (drawn",
                 f"{IND}with np.random.default_rng(seed), temperature and top_k, as `rnncompile run --seed` draws).",
                 f"{IND}Returns (outputs, final_state, tokens [B, N], token_lengths [B]), keyed as rnncompile's",
                 f"{IND}RunResult (token_lengths count the end token).",
                 f'{IND}"""',
                 f'{IND}if sample not in ("greedy", "sample"):',
                 f'{IND * 2}raise ValueError("sample must be greedy or sample, not %r" % (sample,))',
                 f"{IND}inputs = {{}} if inputs is None else inputs",
                 f"{IND}state = {{}} if state is None else state",
                 f"{IND}context = {{}} if context is None else context",
                 f"{IND}final = {{}}",
                 f"{IND}batch = next((len(v) for v in list(inputs.values()) + list(context.values())), 1)"]
        if plan.stack is not None:
            given = ", ".join(string(n) for n in plan.stack.inputs)
            lines += [f"{IND}given_lengths, lengths = lengths, lengths_for(lengths, [{given}])",
                      f"{IND}below = {{" + ", ".join(f'{string(n)}: inputs[{string(n)}]' for n in plan.stack.inputs) + "}"]
            for i, layer in enumerate(plan.stack.layers):  # the decoder reads the top layer's final state only
                lines += w.layer(i, layer, hands_up=layer is not plan.stack.layers[-1])
            lines += self.summary()
        else:
            lines.append(f"{IND}given_lengths = lengths")
        lines += self.start()
        lines += self.teacher() if dec.feed == "target" else []
        lines += self.loop(IND)
        return "\n".join(lines)

    def summary(self) -> list[str]:
        """C: the top layer's final states, merged like its outputs."""
        top = self.plan.stack.layers[-1]
        dicts = ["{" + ", ".join(f'{string(n)}: final[{string(u.key(n))}]' for n in u.cell.states) + "}" for u in top.uses]
        if len(dicts) == 1:
            return [f"{IND}summary = {dicts[0]}  # C: the encoder's final state"]
        self.w.helpers.add("merge")
        return [f"{IND}summary = merge({dicts[0]},", f"{IND}                {dicts[1]}, \"{top.merge}\")"]

    def start(self) -> list[str]:
        dec, w = self.dec, self.w
        fn = w.code(dec.use).fn
        ctx = any(s.from_context for s in dec.use.cell.states.values())
        initial = f"{fn}_initial(k, batch{', context' if ctx else ''})"
        lines = [f"{IND}# decoder: cell `{comment(dec.use.cell.name)}`, starting from "
                 + comment(dec.init if isinstance(dec.init, str) else f"its bridge `{dec.init.cell.name}`"),
                 f'{IND}k = {fn}_prepare(params, {string(dec.use.key(""))}, dtype)']
        if dec.init == "zeros":
            lines.append(f"{IND}start = {initial}")
        elif dec.init == "encoder":
            lines.append(f"{IND}start = {{" + ", ".join(f'{string(n)}: summary[{string(n)}]' for n in dec.use.cell.states) + "}")
        else:
            bridge = dec.init
            bfn = w.code(bridge).fn
            lines += [f'{IND}k_bridge = {bfn}_prepare(params, {string(bridge.key(""))}, dtype)',
                      f"{IND}x = {{n: np.asarray(v)[:, None] for n, v in context.items()}}"]
            if self.plan.stack is not None:
                lines.append(f'{IND}x.update({{"encoder." + n: v[:, None] for n, v in summary.items()}})')
            names = ", ".join(string(n) for n in bridge.cell.inputs)
            extra = "" if bridge.cell.inputs else ", batch=batch, steps=1"
            lines += [f"{IND}bridged, _ = {bfn}_scan(k_bridge, {{n: x[n] for n in ({names}{',' if len(bridge.cell.inputs) == 1 else ''})}}{extra})",
                      f"{IND}start = {initial}",
                      f"{IND}start.update({{n: v[:, 0] for n, v in bridged.items()}})"]
        hfn = w.code(dec.head.use).fn
        lines += [f'{IND}k_head = {hfn}_prepare(params, {string(dec.head.use.key(""))}, dtype)',
                  f"{IND}context = {{n: np.asarray(v) for n, v in context.items()}}"]
        return lines

    def teacher(self) -> list[str]:
        dec, w = self.dec, self.w
        fn, hfn = w.code(dec.use).fn, w.code(dec.head.use).fn
        start, _ = start_and_end_ids(self.w.program.vocab)
        i2 = IND * 2
        return [f'{IND}if {string(dec.target)} in inputs:  # teacher forcing: step t reads target token t - 1',
                f'{i2}target = np.asarray(inputs[{string(dec.target)}])',
                f'{i2}target_lengths = lengths_for(given_lengths, [{string(dec.target)}])',
                f"{i2}prev = np.concatenate([np.full((batch, 1), {start}, target.dtype), target[:, :-1]], axis=1)",
                f'{i2}out, dec_state = {fn}_scan(k, {{{string(dec.token_input)}: prev}}, start, target_lengths)',
                f"{i2}x = dict(out)",
                f"{i2}x.update({{n: np.repeat(v[:, None], prev.shape[1], axis=1) for n, v in context.items()}})",
                f"{i2}outputs, _ = {hfn}_scan(k_head, x, None, target_lengths)",
                f'{i2}final.update({{{string(dec.use.key(""))} + n: v for n, v in dec_state.items()}})',
                f"{i2}if target_lengths is None:",
                f"{IND * 3}target_lengths = np.full(batch, prev.shape[1], np.int64)",
                f"{i2}return outputs, final, target, np.asarray(target_lengths)"]

    def loop(self, ind: str) -> list[str]:
        dec, w = self.dec, self.w
        fn, hfn = w.code(dec.use).fn, w.code(dec.head.use).fn
        start, end = start_and_end_ids(self.w.program.vocab)
        (pname,) = dec.head.use.cell.outputs()
        i2, i3 = ind + IND, ind + IND * 2
        stop = end is not None and dec.stop_at_end
        lines = [f"{ind}# feed back each step's token" + (f"; a sequence is done after the end token ({end})"
                                                            if stop else ""),
                 f"{ind}rng = np.random.default_rng(seed)",
                 f"{ind}token = np.full(batch, {start}, np.int64)",
                 f"{ind}done = np.zeros(batch, bool)",
                 f"{ind}token_lengths = np.zeros(batch, np.int64)",
                 f"{ind}dec_state, tokens, probs = start, [], []",
                 f"{ind}for _ in range(steps or {dec.steps}):",
                 f'{i2}out, new_state = {fn}_scan(k, {{{string(dec.token_input)}: token[:, None]}}, dec_state)',
                 f"{i2}x = dict(out)",
                 f"{i2}x.update({{n: v[:, None] for n, v in context.items()}})",
                 f"{i2}outputs, _ = {hfn}_scan(k_head, x)",
                 f'{i2}p = outputs[{string(pname)}][:, 0]',
                 f"{i2}token = np.where(done, {end if end is not None else 0}, pick_tokens(p, sample, temperature, "
                 "top_k, rng))",
                 f"{i2}dec_state = {{n: np.where(done.reshape((-1,) + (1,) * (v.ndim - 1)), dec_state[n], v)",
                 f"{i2}             for n, v in new_state.items()}}",
                 f"{i2}probs.append(np.where(done[:, None], 0, p))  # a finished sequence gives zeros",
                 f"{i2}tokens.append(token)",
                 f"{i2}token_lengths += ~done"]
        if stop:
            lines += [f"{i2}done |= token == {end}",
                      f"{i2}if done.all():",
                      f"{i3}break"]
        lines += [f'{ind}final.update({{{string(dec.use.key(""))} + n: v for n, v in dec_state.items()}})',
                  f'{ind}return {{{string(pname)}: np.stack(probs, axis=1)}}, final, np.stack(tokens, axis=1), token_lengths']
        return lines
