"""The `decode` flow op, rendered: a decoder loop in the exported `run`.

Teacher forcing (the target given: one scan of the decoder over the target shifted by the start token)
or feeding back each step's own token, greedy or drawn with NumPy's seeded generator; a sequence stops
after the end token and a finished one repeats it with a zero distribution. The decoder cell reads the
encoder's outputs at every source step (its memory, [B, S, ...]: a shorter source padded with zeros to
the S the cell declares) when the spec says so, and a mask of the real source steps (1.0, else 0.0)
computed from the source lengths. This is what
`rnncompile.drivers.Executable.decode` computes; the helpers below are the exported module's own code,
written here once (tests/test_export_flow.py checks that `pick_tokens` draws what the drivers draw).
"""
from __future__ import annotations

from rnncompile import flow
from rnncompile.drivers import start_and_end_ids

from .cell import IND
from .names import string

DECODE_HELPERS = {
    "pick_tokens": '''
def pick_tokens(p, how, temperature, top_k, rng):
    """One token per row of a batch of distributions p [B, V]: the most likely (greedy), or one drawn
    from p ** (1 / temperature) over the top_k most likely (sample): one rng.random per row, in float64,
    the first token whose running total reaches it."""
    p = np.asarray(p, dtype=np.float64)
    if how == "greedy":
        return p.argmax(axis=-1)
    logp = np.log(np.maximum(p, 1e-300)) / temperature
    if top_k is not None and top_k < p.shape[-1]:
        kth = np.sort(logp, axis=-1)[:, -top_k][:, None]  # the k-th largest of each row
        logp = np.where(logp >= kth, logp, -np.inf)
    q = np.exp(logp - logp.max(axis=-1, keepdims=True))
    q /= q.sum(axis=-1, keepdims=True)
    u = rng.random((p.shape[0], 1))
    return np.minimum((q.cumsum(axis=-1) < u).sum(axis=-1), p.shape[-1] - 1)
''',
    "pad_steps": '''
def pad_steps(v, steps):
    """[B, n, ...] values padded with zeros to [B, steps, ...]."""
    if v.shape[1] == steps:
        return v
    out = np.zeros((v.shape[0], steps) + v.shape[2:], v.dtype)
    out[:, :v.shape[1]] = v
    return out
''',
    "source_mask": '''
def source_mask(lengths, steps, slots, batch, dtype):
    """[B, slots]: 1.0 at each sequence's real source steps (all `steps` without lengths), 0.0 after."""
    real = np.full(batch, steps) if lengths is None else np.asarray(lengths)
    return (np.arange(slots)[None, :] < real[:, None]).astype(dtype)
''',
}


def render_decode(r, op: flow.Decode) -> list[str]:
    """`op` as lines of `run`; `r` is the FlowRenderer (cells, bundle locals, lengths, helpers)."""
    dec = op.decoder
    r.helpers.add("pick_tokens")
    code, head = r.code(dec.use), r.code(dec.head.use)
    k, k_head = r.prepared(dec.use), r.prepared(dec.head.use)
    start = r.bundle(op.state)
    out, final, tokens = r.define(op.out), r.define(op.final), r.define(op.tokens)
    lines = []
    memory = r.local("memory")
    if _reads_memory(op):  # the encoder's outputs at every source step, read at every decoder step
        cin = op.memory[0][0] if op.memory else op.memory_mask[0]
        want = dec.use.cell.inputs[cin].shape[0]
        lines.append(f"{memory} = {{" + ", ".join(f"{string(c)}: {r.member(read)}" for c, read in op.memory) + "}")
        steps = r.local("source_steps")
        lines.append(f"{steps} = " + (f"next(iter({memory}.values())).shape[1]" if op.memory
                                      else f"np.shape(inputs[{string(op.memory_mask[1][0])}])[1]"))
        message = [f"the source has %d steps, but the decoder's attention reads at most {want} ",
                   f"(its input `{cin}` is [{want}, ...]): raise that dim, or shorten the source"]
        r.helpers.add("pad_steps")
        lines += [f"if {steps} > {want}:  # the decoder cell reads {want} source steps",
                  f"{IND}raise ValueError({string(message[0])}",
                  f"{IND}                 {string(message[1])} % {steps})",
                  f"{memory} = {{n: pad_steps(v, {want}) for n, v in {memory}.items()}}  # a shorter source: "
                  "zeros, masked out"]
        if op.memory_mask is not None:
            r.helpers.add("source_mask")
            name, sources = op.memory_mask
            lines.append(f"{memory}[{string(name)}] = source_mask({r.lengths(sources)}, {steps}, {want}, batch, "
                         "dtype)")
    bos, _ = start_and_end_ids(r.program.vocab)
    parts = (r, op, code, head, k, k_head, start, memory, (out, final, tokens))
    if dec.feed == "target":
        lines.append(f"if {string(dec.target)} in inputs:  # teacher forcing: step t reads target token t - 1")
        lines += [IND + line for line in _teacher(*parts, bos)]
        lines.append("else:  # no target given: feed back each step's own token")
        lines += [IND + line for line in _loop(*parts, bos)]
    else:
        lines += _loop(*parts, bos)
    return lines


def _teacher(r, op, code, head, k, k_head, start, memory, bundles, bos) -> list[str]:
    out, final, tokens = bundles
    dec = op.decoder
    names = ("target", "target_lengths", "prev", "x", "target_steps", "got")
    target, lengths, prev, x, steps, got = (r.local(n) for n in names)
    return [f"{target} = np.asarray(inputs[{string(dec.target)}])",
            f"{lengths} = lengths_for(lengths, [{string(dec.target)}])",
            f"{prev} = np.concatenate([np.full((batch, 1), {bos}, {target}.dtype), {target}[:, :-1]], axis=1)",
            f"{steps} = {prev}.shape[1]",
            f"{x} = {{{string(dec.token_input)}: {prev}}}",
            *([f"{x}.update({{n: np.broadcast_to(v[:, None], (batch, {steps}) + v.shape[1:]) "
               f"for n, v in {memory}.items()}})  # the memory at every step"] if _reads_memory(op) else []),
            f"{got}, {final} = {code.fn}_scan({k}, {x}, {start}, {lengths})",
            f"{x} = dict({got})",
            f"{x}.update({{n: np.repeat(np.asarray(v)[:, None], {steps}, axis=1) for n, v in context.items()}})",
            f"{out}, _ = {head.fn}_scan({k_head}, {x}, None, {lengths})",
            f"{tokens} = {{\"tokens\": {target}, \"lengths\": np.full(batch, {steps}, np.int64) if {lengths} is None "
            f"else np.asarray({lengths})}}"]


def _loop(r, op, code, head, k, k_head, start, memory, bundles, bos) -> list[str]:
    out, final, tokens = bundles
    dec = op.decoder
    _, end = start_and_end_ids(r.program.vocab)
    (pname,) = dec.head.use.cell.outputs()
    stop = end is not None and dec.stop_at_end
    token, done, counts, drawn, probs = (r.local(n) for n in ("token", "done", "token_lengths", "drawn", "probs"))
    x, got, new, step_out, p, rng = (r.local(n) for n in ("x", "got", "new_state", "step_out", "p", "rng"))
    i2 = IND
    lines = ["# each step reads the token the step before produced" + (f"; a sequence is done after the end "
                                                                        f"token ({end})" if stop else ""),
             f"{rng} = np.random.default_rng(seed)",
             f"{token} = np.full(batch, {bos}, np.int64)",
             f"{done} = np.zeros(batch, bool)",
             f"{counts} = np.zeros(batch, np.int64)",
             f"{final}, {drawn}, {probs} = {start}, [], []",
             f"for _ in range(steps or {dec.steps}):",
             f"{i2}{x} = {{{string(dec.token_input)}: {token}[:, None]}}",
             *([f"{i2}{x}.update({{n: v[:, None] for n, v in {memory}.items()}})  # the memory, one step"]
               if _reads_memory(op) else []),
             f"{i2}{got}, {new} = {code.fn}_scan({k}, {x}, {final})",
             f"{i2}{x} = dict({got})",
             f"{i2}{x}.update({{n: np.asarray(v)[:, None] for n, v in context.items()}})",
             f"{i2}{step_out}, _ = {head.fn}_scan({k_head}, {x})",
             f"{i2}{p} = {step_out}[{string(pname)}][:, 0]",
             f"{i2}{token} = np.where({done}, {end if end is not None else 0}, pick_tokens({p}, sample, temperature, "
             f"top_k, {rng}))",
             f"{i2}{final} = {{n: np.where({done}.reshape((-1,) + (1,) * (v.ndim - 1)), {final}[n], v)",
             f"{i2}{' ' * len(final)}     for n, v in {new}.items()}}  # a finished sequence keeps its state",
             f"{i2}{probs}.append(np.where({done}[:, None], 0, {p}))  # and gives zeros",
             f"{i2}{drawn}.append({token})",
             f"{i2}{counts} += ~{done}"]
    if stop:
        lines += [f"{i2}{done} |= {token} == {end}",
                  f"{i2}if {done}.all():",
                  f"{i2}{IND}break"]
    lines += [f"{out} = {{{string(pname)}: np.stack({probs}, axis=1)}}",
              f"{tokens} = {{\"tokens\": np.stack({drawn}, axis=1), \"lengths\": {counts}}}"]
    return lines


def _reads_memory(op: flow.Decode) -> bool:
    """Whether the decoder cell reads the encoder's outputs (or just their mask) at every step."""
    return bool(op.memory or op.memory_mask)
