"""`rnncompile export --backend python`: a standalone module that runs without rnncompile.

The exported modules are imported in a separate, isolated interpreter
(`python -I -S`) whose path holds only the modules and NumPy, and their
`run` must give the interpreter's numbers.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import rnncompile
from conftest import ROOT, SPECS
from rnncompile.api import make_params
from composition_reference import replace_once, spec_text
from rnncompile.trees import Tree
from test_backends_conformance import SEQUENCE, TOL, sequence_case
from test_decoding import ENCODER_LINE, ENCODER_VARIANTS, INIT_LINE, TEACHER

CONTEXT_HEAD = """\
rnncompile: 1
name: ctxhead
dims: {I: 3, H: 4, C: 2, K: 5, T: 6}
cells:
  rnn:
    inputs: {x: I}
    state: {h: {shape: H, init: h0}}
    params: {W: {shape: [H, H + I]}, b: {shape: [H], init: zeros}, h0: {shape: [H], init: normal}}
    update: {h: "tanh(W @ concat(h, x) + b)"}
    outputs: {h: h}
model:
  input: {x: [T, I]}
  context: {z: [C]}
  layers:
    - {scan: rnn, direction: bidirectional, merge: sum}
    - {scan: rnn}
  head:
    params: {W_y: {shape: [K, H + C]}}
    outputs: {y: "softmax(W_y @ concat(h, z))"}
    at: last
"""

RUNNER = """\
import importlib, importlib.util, sys
sys.path[:0] = [{numpy!r}, {here!r}]
assert importlib.util.find_spec("rnncompile") is None and importlib.util.find_spec("backends") is None
import numpy as np

for name in {names!r}:
    mod = importlib.import_module(name)
    with np.load(name + ".in.npz") as f:
        data = {{k: f[k] for k in f.files}}
    part = lambda p: {{k[len(p):]: v for k, v in data.items() if k.startswith(p)}}
    try:
        outputs, final = mod.run(part("params."), part("inputs."), part("state.") or None, data.get("lengths"),
                                 part("context.") or None, dtype=str(data["dtype"]))
    except NotImplementedError as e:
        open(name + ".err", "w").write(str(e))
        continue
    np.savez(name + ".out.npz", **{{"outputs." + k: v for k, v in outputs.items()}},
             **{{"state." + k: v for k, v in final.items()}})
"""


def isolated_python(tmp_path, names: list[str]) -> None:
    """Run the exported modules in `tmp_path` with only NumPy importable (no rnncompile, no site-packages)."""
    only = tmp_path / "only_numpy"
    only.mkdir()
    os.symlink(os.path.dirname(np.__file__), only / "numpy")
    script = tmp_path / "runner.py"
    script.write_text(RUNNER.format(numpy=str(only), here=str(tmp_path), names=names))
    done = subprocess.run([sys.executable, "-I", "-S", str(script)], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr


def save_case(path, params, inputs, context, lengths, state, dtype):
    arrays = {f"params.{k}": v for k, v in params.items()}
    arrays.update({f"inputs.{k}": v for k, v in inputs.items()})
    arrays.update({f"context.{k}": v for k, v in (context or {}).items()})
    arrays.update({f"state.{k}": v for k, v in (state or {}).items()})
    if lengths is not None:
        arrays["lengths"] = lengths
    np.savez(path, dtype=np.array(dtype), **arrays)


def test_exported_modules_match_the_interpreter_without_rnncompile(cli, tmp_path):
    (tmp_path / "ctxhead.yaml").write_text(CONTEXT_HEAD)
    cases = [(p, "float32", False) for p in SEQUENCE]
    cases += [(SPECS / "lstm.yaml", "float64", True), (SPECS / "bigru.yaml", "float64", True),
              (tmp_path / "ctxhead.yaml", "float32", False), (tmp_path / "ctxhead.yaml", "float64", True)]
    expected, names = {}, []
    for i, (spec, dtype, with_state) in enumerate(cases):
        name = f"m{i}_{spec.stem}"
        code, out, err = cli("export", spec, "--backend", "python", "-o", tmp_path / f"{name}.py")
        assert code == 0, err
        program = rnncompile.compile(spec)
        params = make_params(program, seed=0, dtype=dtype)
        inputs, context, lengths = sequence_case(program, dtype)
        state = None
        if with_state:
            rng = np.random.default_rng(i)
            state = {u.key(n): rng.standard_normal((3,) + s.shape).astype(dtype)
                     for layer in program.plan.stack.layers for u in layer.uses for n, s in u.cell.states.items()}
        save_case(tmp_path / f"{name}.in.npz", params, inputs, context, lengths, state, dtype)
        expected[name] = (rnncompile.run(program, inputs=inputs, params=params, context=context, lengths=lengths,
                                         init_state=state, dtype=dtype), dtype)
        names.append(name)
    isolated_python(tmp_path, names)
    for name, (want, dtype) in expected.items():
        with np.load(tmp_path / f"{name}.out.npz") as f:
            got = {k: f[k] for k in f.files}
        assert set(got) == {f"outputs.{k}" for k in want.outputs} | {f"state.{k}" for k in want.final_state}, name
        for k, v in want.outputs.items():
            assert got[f"outputs.{k}"].dtype == np.dtype(dtype), name
            np.testing.assert_allclose(got[f"outputs.{k}"], v, err_msg=f"{name}: {k}", **TOL[dtype])
        for k, v in want.final_state.items():
            np.testing.assert_allclose(got[f"state.{k}"], v, err_msg=f"{name}: state {k}", **TOL[dtype])


def test_export_docstring_names_shapes_and_params(cli, tmp_path):
    code, out, err = cli("export", SPECS / "sentiment.yaml", "-o", tmp_path / "m.py")
    assert code == 0, err
    assert out.strip() == f"wrote {tmp_path / 'm.py'}"
    doc = (tmp_path / "m.py").read_text().split('"""')[1]
    assert "from sentiment.yaml" in doc and "imports only NumPy" in doc
    assert "import m as model" in doc  # the module's name is the file's
    assert "inputs:  w [B, T] tokens" in doc
    assert "outputs: p [B, 2]" in doc  # many-to-one: one distribution per sequence
    assert "W_i [" in doc and "head.W_y [" in doc


def test_export_is_the_same_bytes_each_time(cli, tmp_path):
    for where in ("a", "b"):
        assert cli("export", SPECS / "ntm.yaml", "-o", tmp_path / where / "ntm_model.py")[0] == 0
    assert (tmp_path / "a" / "ntm_model.py").read_bytes() == (tmp_path / "b" / "ntm_model.py").read_bytes()


def test_export_needs_a_backend_that_writes_code(cli, tmp_path):
    code, out, err = cli("export", SPECS / "lstm.yaml", "--backend", "numpy", "-o", tmp_path / "m.py")
    assert code == 2
    assert err.strip() == "error: backend `numpy` cannot export standalone code; use --backend c or python"
    assert not (tmp_path / "m.py").exists()


def test_codegen_writes_into_a_folder_named_after_the_spec(cli, tmp_path):
    build = tmp_path / "build"
    code, out, err = cli("codegen", SPECS / "lstm.yaml", "--target", "python", "-o", build)
    assert (code, err) == (0, "")
    assert out.strip() == f"wrote {build / 'lstm_model.py'}"
    assert cli("export", SPECS / "lstm.yaml", "-o", tmp_path / "lstm_model.py")[0] == 0
    assert (build / "lstm_model.py").read_bytes() == (tmp_path / "lstm_model.py").read_bytes()


def test_codegen_of_a_backend_without_code_writes_nothing(cli, tmp_path):
    code, out, err = cli("codegen", SPECS / "lstm.yaml", "--target", "numpy", "-o", tmp_path / "build")
    assert code == 2
    assert err.strip() == "error: backend `numpy` cannot export standalone code; use --target c or python"
    assert not (tmp_path / "build").exists()


def test_export_of_a_bad_spec_writes_nothing(cli, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("rnncompile: 1\nname: x\ncells: {}\nmodel: {scan: nope}\n")
    code, out, err = cli("export", bad, "-o", tmp_path / "m.py")
    assert code == 1 and "no cell named `nope`" in err
    assert list(tmp_path.iterdir()) == [bad]


def test_readme_example_runs(tmp_path):
    """The snippet in the module docstring, as a user would run it."""
    subprocess.run([sys.executable, "-m", "rnncompile.cli", "export", str(SPECS / "lstm.yaml"), "-o",
                    str(tmp_path / "lstm_model.py")], check=True, cwd=ROOT, capture_output=True)
    subprocess.run([sys.executable, "-m", "rnncompile.cli", "run", str(SPECS / "lstm.yaml"), "--save-weights",
                    str(tmp_path / "weights.npz")], check=True, cwd=ROOT, capture_output=True)
    code = textwrap.dedent("""
        import numpy as np
        import lstm_model as model
        params = dict(np.load("weights.npz"))
        x = np.ones((2, 5, 8), np.float32)
        outputs, final_state = model.run(params, {"x": x}, lengths=None)
        print(outputs["y"].shape, sorted(final_state))
    """)
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "(2, 5, 16) ['c', 'h']"


# -- decoders: greedy, sampled and teacher-forced decoding ------------------------------------------
DECODE_RUNNER = """\
import importlib, importlib.util, json, sys
sys.path[:0] = [{numpy!r}, {here!r}]
assert importlib.util.find_spec("rnncompile") is None and importlib.util.find_spec("backends") is None
import numpy as np

for name in {names!r}:
    mod = importlib.import_module(name)
    with np.load(name + ".in.npz") as f:
        data = {{k: f[k] for k in f.files}}
    part = lambda p: {{k[len(p):]: v for k, v in data.items() if k.startswith(p)}}
    kw = json.load(open(name + ".kw.json"))
    lengths = part("lengths.") or data.get("lengths")
    outputs, final, tokens, token_lengths = mod.run(part("params."), part("inputs."), None, lengths,
                                                    part("context.") or None, dtype=str(data["dtype"]), **kw)
    np.savez(name + ".out.npz", tokens=tokens, token_lengths=token_lengths,
             **{{"outputs." + k: v for k, v in outputs.items()}}, **{{"state." + k: v for k, v in final.items()}})
"""


def decoder_spec(tmp_path, name: str, edits=(), base="seq2seq"):
    text = spec_text(base)
    for old, new in edits:
        text = replace_once(text, old, new)
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    return path


def decoder_cases(tmp_path):
    """(spec, dtype, run keywords): every decoder form the drivers know, batch 3 or 4."""
    bridge, bi = ENCODER_VARIANTS["bridge"], ENCODER_VARIANTS["bidirectional_concat"]
    sampled = [("    steps: 12\n", "    steps: 12\n    sample: sample\n    temperature: 2.0\n    top_k: 5\n")]
    return [(SPECS / "seq2seq.yaml", "float32", {}),
            (SPECS / "captioner.yaml", "float32", {}),
            (SPECS / "captioner.yaml", "float64", {"steps": 4}),
            (decoder_spec(tmp_path, "teacher", TEACHER), "float32", {}),
            (decoder_spec(tmp_path, "bridge", [(ENCODER_LINE, bridge[0]), (INIT_LINE, bridge[2])]), "float32", {}),
            (decoder_spec(tmp_path, "bi", [(ENCODER_LINE, bi[0]), ("dims: {E: 16, H: 32", "dims: {E: 16, H: 8")]),
             "float32", {}),
            (decoder_spec(tmp_path, "sampled", sampled, "captioner"), "float64", {"seed": 3}),
            (decoder_spec(tmp_path, "sampled_cli", sampled, "captioner"), "float64", {"seed": 5, "sample": "greedy"})]


def test_exported_decoders_match_the_interpreter(cli, tmp_path):
    expected, names = {}, []
    for i, (spec, dtype, kw) in enumerate(decoder_cases(tmp_path)):
        name = f"d{i}_{spec.stem}"
        code, out, err = cli("export", spec, "-o", tmp_path / f"{name}.py")
        assert code == 0, err
        assert "`run` decodes" in err
        program = rnncompile.compile(spec)
        params = make_params(program, seed=i, dtype=dtype)
        params = {k: v * 3 for k, v in params.items()}  # sharper distributions: sequences end at different steps
        rng = np.random.default_rng(i)
        vocab = len(program.vocab.tokens)
        batch = 4
        inputs = {n: rng.integers(0, vocab, (batch, 6)) for n in program.plan.inputs}
        context = {n: rng.standard_normal((batch,) + s).astype(dtype) for n, s in program.plan.context.items()}
        lengths = np.array([6, 3, 1, 5]) if inputs else None
        save_case(tmp_path / f"{name}.in.npz", params, inputs, context or None, lengths, None, dtype)
        (tmp_path / f"{name}.kw.json").write_text(json.dumps(kw))
        run_kw = {"seed": kw.get("seed", 0), "steps": kw.get("steps")}  # steps: a generator's tokens
        if "sample" in kw:  # the interpreter's knob is the spec's: compile the spec as run would be told
            program = rnncompile.compile_text(spec.read_text().replace("sample: sample", "sample: greedy"),
                                              file=str(spec))
        expected[name] = (rnncompile.run(program, inputs=inputs, params=params, context=context or None,
                                         lengths=lengths, dtype=dtype, **run_kw), dtype)
        names.append(name)
    script = tmp_path / "runner.py"
    only = tmp_path / "only_numpy"
    only.mkdir()
    os.symlink(os.path.dirname(np.__file__), only / "numpy")
    script.write_text(DECODE_RUNNER.format(numpy=str(only), here=str(tmp_path), names=names))
    done = subprocess.run([sys.executable, "-I", "-S", str(script)], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    ended_early = 0
    for name, (want, dtype) in expected.items():
        with np.load(tmp_path / f"{name}.out.npz") as f:
            got = {k: f[k] for k in f.files}
        np.testing.assert_array_equal(got["tokens"], want.tokens, err_msg=name)
        np.testing.assert_array_equal(got["token_lengths"], want.lengths, err_msg=name)
        ended_early += int((want.lengths < want.tokens.shape[1]).any())
        assert set(got) == {"tokens", "token_lengths"} | {f"outputs.{k}" for k in want.outputs} | \
            {f"state.{k}" for k in want.final_state}, name
        for k, v in want.outputs.items():
            assert got[f"outputs.{k}"].dtype == np.dtype(dtype), name
            np.testing.assert_allclose(got[f"outputs.{k}"], v, err_msg=f"{name}: {k}", **TOL[dtype])
        for k, v in want.final_state.items():
            np.testing.assert_allclose(got[f"state.{k}"], v, err_msg=f"{name}: state {k}", **TOL[dtype])
    assert ended_early >= 2, "some sequences stop at the end token before the others"


# -- tree folds ----------------------------------------------------------------------------------
TREE_RUNNER = """\
import importlib, importlib.util, json, sys
sys.path[:0] = [{numpy!r}, {here!r}]
assert importlib.util.find_spec("rnncompile") is None and importlib.util.find_spec("backends") is None
import numpy as np

for name in {names!r}:
    mod = importlib.import_module(name)
    with np.load(name + ".in.npz") as f:
        params = {{k[len("params."):]: f[k] for k in f.files if k.startswith("params.")}}
        dtype = str(f["dtype"])
    given = json.load(open(name + ".trees.json"))
    trees = given["trees"]
    if "chain" in given:  # built here: a nested list this deep is beyond json's recursion
        depth, leaf, arity = given["chain"]
        tree = leaf
        for _ in range(depth - 1):
            tree = [tree] if arity == 1 else (tree, leaf)
        trees = trees + [tree]
    try:
        mod.run(params, {{}})
    except NotImplementedError as e:
        assert "run_trees(params, trees)" in str(e), e
    outputs, final, nodes = mod.run_trees(params, trees, dtype=dtype)
    np.savez(name + ".out.npz", **{{"outputs." + k: v for k, v in outputs.items()}},
             **{{"state." + k: v for k, v in final.items()}}, **{{"nodes." + k: v for k, v in nodes.items()}})
"""


def random_tree(rng, vocab: int, arity, leaves: int):
    """A tree of token ids with `leaves` leaves: pairs (arity 2) or 1 to 3 children (arity any), built
    bottom up by joining neighbours."""
    level = [int(t) for t in rng.integers(1, vocab, leaves)]
    while len(level) > 1:
        k = 2 if arity == 2 else int(rng.integers(1, 4))
        at = int(rng.integers(0, max(1, len(level) - k + 1)))
        if k == 1 and rng.random() < 0.5:
            continue  # no unary node this time
        level[at:at + k] = [list(level[at:at + k])]
    return level[0]


def as_words(tree, tokens):
    """The same tree with words for ids (the interpreter's JSON trees), without recursion."""
    out = [None]
    stack = [(tree, out, 0)]
    while stack:
        item, holder, i = stack.pop()
        if isinstance(item, int):
            holder[i] = tokens[item]
        else:
            holder[i] = [None] * len(item)
            stack.extend((kid, holder[i], j) for j, kid in enumerate(item))
    return out[0]


def chain_tree(depth: int, leaf: str, arity) -> Tree:
    """The deep tree the runner builds, from parent pointers: a chain of `depth` nodes (arity 1), or
    depth - 1 inner nodes each with an inner left child (the last: a leaf) and a leaf on the right."""
    if arity == 1:
        return Tree.from_parents(np.arange(depth) - 1, [None] * (depth - 1) + [leaf])
    m = depth - 1  # inner nodes 0..m-1 (0: the root), then the deepest left leaf, then each one's right leaf
    parents = np.concatenate([np.arange(m) - 1, [m - 1], np.arange(m)])
    words = np.array([None] * m + [leaf] * (m + 1), object)
    return _preorder(parents, words)


def _preorder(parent: np.ndarray, words: np.ndarray) -> Tree:
    """Renumber a tree's nodes in preorder (children in id order), iteratively."""
    kids = [[] for _ in parent]
    for i, p in enumerate(parent.tolist()):
        if p >= 0:
            kids[p].append(i)
    order, stack = [], [int(np.flatnonzero(parent < 0)[0])]
    while stack:
        n = stack.pop()
        order.append(n)
        stack.extend(reversed(kids[n]))
    new = np.empty(len(parent), np.int64)
    new[order] = np.arange(len(parent))
    p = parent[order]
    return Tree.from_parents(np.where(p >= 0, new[np.maximum(p, 0)], -1), words[order].tolist())


TREE_SPECS = ["rvnn.yaml", "treelstm_childsum.yaml", "treelstm_nary.yaml"]


def test_exported_tree_folds_match_the_interpreter(cli, tmp_path):
    expected, names = {}, []
    for i, spec in enumerate(TREE_SPECS):
        for dtype in ("float32", "float64"):
            name = f"t{i}_{dtype}_{spec.split('.')[0]}"
            code, out, err = cli("export", SPECS / spec, "-o", tmp_path / f"{name}.py")
            assert code == 0, err
            assert "call run_trees(params, trees)" in err
            program = rnncompile.compile(SPECS / spec)
            arity = program.plan.fold.cell.arity
            params = make_params(program, seed=i, dtype=dtype)
            tokens = program.vocab.tokens
            rng = np.random.default_rng(i)
            trees = [random_tree(rng, len(tokens), arity, n) for n in (1, 2, 5, 9, 4)]
            given = {"trees": trees}
            forest = [as_words(t, tokens) for t in trees]
            if dtype == "float32":  # and a 10,000-deep tree
                given["chain"] = [10_000, 7, arity or 1]
                forest.append(chain_tree(10_000, tokens[7], arity or 1))
            (tmp_path / f"{name}.trees.json").write_text(json.dumps(given))
            save_case(tmp_path / f"{name}.in.npz", params, {}, None, None, None, dtype)
            expected[name] = (rnncompile.run(program, trees=forest, params=params, dtype=dtype), dtype)
            names.append(name)
    only = tmp_path / "only_numpy"
    only.mkdir()
    os.symlink(os.path.dirname(np.__file__), only / "numpy")
    script = tmp_path / "runner.py"
    script.write_text(TREE_RUNNER.format(numpy=str(only), here=str(tmp_path), names=names))
    done = subprocess.run([sys.executable, "-I", "-S", str(script)], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    for name, (want, dtype) in expected.items():
        with np.load(tmp_path / f"{name}.out.npz") as f:
            got = {k: f[k] for k in f.files}
        parts = {"outputs": want.outputs, "state": want.final_state, "nodes": want.nodes}
        assert set(got) == {f"{p}.{k}" for p, d in parts.items() for k in d}, name
        for p, d in parts.items():
            for k, v in d.items():
                assert got[f"{p}.{k}"].dtype == np.dtype(dtype), name
                np.testing.assert_allclose(got[f"{p}.{k}"], v, err_msg=f"{name}: {p}.{k}", **TOL[dtype])


def load_exported(cli, tmp_path, spec: str):
    path = tmp_path / f"{spec.split('.')[0]}_model.py"
    assert cli("export", SPECS / spec, "-o", path)[0] == 0
    module = {}
    exec(compile(path.read_text(), str(path), "exec"), module)
    return module


@pytest.mark.parametrize("trees, message", [
    ([[1, 2, 3]], "tree 0, node 0 (preorder) has 3 children, but cell `compose` takes exactly 2 (arity: 2); "
                  "binarize the trees"),
    ([[1, 2], [3, [4, 99]]], "tree 1, node 4 (preorder): word id 99 is not a token id (the vocabulary has 49)"),
    ([[1, "dog"]], "tree 0, node 2 (preorder) is str 'dog'; a node is a token id, a list of subtrees or a dict"),
    ([[1, []]], "tree 0, node 2 (preorder) is an empty list: a node needs children"),
    ([[{"children": [1, 2]}, {"label": 1}]], "tree 0, node 4 (preorder) has no word, but cell `compose` reads it"),
    ([], "no trees given"),
])
def test_exported_run_trees_refuses_bad_trees_in_one_line(cli, tmp_path, trees, message):
    m = load_exported(cli, tmp_path, "rvnn.yaml")
    params = make_params(rnncompile.compile(SPECS / "rvnn.yaml"), seed=0)
    with pytest.raises(ValueError) as e:
        m["run_trees"](params, trees)
    assert str(e.value).startswith(message) and "\n" not in str(e.value)


def test_exported_tree_model_takes_dict_nodes_and_tuples(cli, tmp_path):
    m = load_exported(cli, tmp_path, "treelstm_childsum.yaml")
    params = make_params(rnncompile.compile(SPECS / "treelstm_childsum.yaml"), seed=0)
    a = m["run_trees"](params, [[3, (4, 5)], 6])
    b = m["run_trees"](params, [{"children": [{"word": 3}, [4, 5]]}, {"word": 6, "label": 2}])
    for x, y in zip(a, b):
        for k in x:
            np.testing.assert_array_equal(x[k], y[k])
    assert a[2]["h"].shape == (6, 16) and a[1]["h"].shape == (2, 16) and a[0]["p"].shape == (2, 5)


def test_exported_decoder_refuses_an_unknown_sampling_mode(cli, tmp_path):
    m = load_exported(cli, tmp_path, "captioner.yaml")
    with pytest.raises(ValueError, match="sample must be greedy or sample, not 'beam'"):
        m["run"]({}, context={"img": np.zeros((1, 32))}, sample="beam")
