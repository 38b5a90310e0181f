"""Tree recursion: reading trees, the level schedule, the fold (level-batched and per node) against
hand-written references of the papers' equations and PyTorch, heads, errors, the CLI and diagrams."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

import rnncompile
from rnncompile.errors import DataError, SpecError
from rnncompile.trees.schedule import heights, make_schedule
from rnncompile.trees import Forest, Tree, parse_tree, random_trees, read_tree, read_trees

import tree_reference as ref
from conftest import ROOT, SPECS

TREE_SPECS = ["rvnn", "treelstm_childsum", "treelstm_nary"]
PTB = "(S (NP He) (VP (V is) (ADJ happy)))"
SST = "(3 (2 It) (4 (2 's) (4 great)))"


@pytest.fixture(scope="module")
def programs():
    return {name: rnncompile.compile(SPECS / f"{name}.yaml") for name in TREE_SPECS}


def error_text(fn, *args, **kwargs) -> str:
    with pytest.raises(DataError) as e:
        fn(*args, **kwargs)
    return e.value.format()


# ---- reading trees -----------------------------------------------------------------------------

def test_penn_treebank_brackets():
    t = parse_tree(PTB)
    assert t.parent.tolist() == [-1, 0, 0, 2, 2]
    assert list(t.labels) == ["S", "NP", "VP", "V", "ADJ"]
    assert list(t.words) == [None, "He", None, "is", "happy"]  # (LABEL word) is one leaf holding both
    assert t.columns.tolist() == [1, 4, 12, 16, 23]
    assert t.to_text() == PTB


def test_sst_labels_bare_words_and_the_treebank_wrapper():
    t = parse_tree(SST)
    assert list(t.labels) == ["3", "2", "4", "2", "4"] and t.words[4] == "great"
    t = parse_tree("( (S (NP the big cat) (VP sat)) )")  # outer bracket of the treebank files: dropped
    assert t.parent.tolist() == [-1, 0, 1, 1, 1, 0]
    assert list(t.words) == [None, None, "the", "big", "cat", "sat"] and t.labels[0] == "S"
    assert parse_tree("wins").parent.tolist() == [-1]
    unlabeled = parse_tree("(_ (_ the cat) sat)")
    assert list(unlabeled.labels) == [None] * 5 and unlabeled.to_text() == "(_ (_ the cat) sat)"


def test_json_trees_and_parent_pointers():
    t = read_tree('[["the", "cat"], "sat"]')
    assert t.parent.tolist() == [-1, 0, 1, 1, 0] and list(t.words) == [None, None, "the", "cat", "sat"]
    t = read_tree('{"label": "S", "children": [{"label": "NP", "word": "He"}, {"label": "VP", "word": "wins"}]}')
    assert t.parent.tolist() == [-1, 0, 0] and list(t.labels) == ["S", "NP", "VP"]
    zero = read_tree('{"parents": [2, 2, -1], "words": ["a", "b", "c"]}')
    one = Tree.from_parents([3, 3, 0], ["a", "b", "c"])  # 1-based, 0 = root (Tai et al.'s files)
    assert zero.parent.tolist() == one.parent.tolist() == [2, 2, -1]
    assert list(one.words) == ["a", "b", "c"]


def test_tree_files(tmp_path):
    f = tmp_path / "trees.txt"
    f.write_text(f"# a comment\n{PTB}\n\n{SST}\n[\"a\", \"b\"]\n")
    trees = read_trees(f)
    assert [t.size for t in trees] == [5, 5, 3]
    assert trees[1].where == f"{f}:4"
    j = tmp_path / "trees.json"
    j.write_text(json.dumps({"trees": [["a", "b"], {"parents": [-1, 0]}]}))
    assert [t.size for t in read_trees(j)] == [3, 2]
    j.write_text("[1, 2]")
    assert "a .json file of trees is an object" in error_text(read_trees, j)


@pytest.mark.parametrize("text, message, col", [
    ("(S (NP He) (VP wins)", "unbalanced brackets: the `(` at column 1 is never closed", 1),
    ("(S (NP He) (VP wins)))", "unbalanced brackets: this `)` closes nothing", 22),
    ("", "empty tree: no words or brackets", 0),
    ("  ", "empty tree: no words or brackets", 0),
    ("(S ())", "empty brackets: a node needs a label, a word or children", 4),
    ("(S (NP) (VP wins))", "node `NP` has no children and no word", 4),
    ("(A b) (C d)", "a second tree starts here; give one tree per line", 7),
    ('["a", []]', "tree[1] is an empty list: a node needs children", 0),
    ('{"parents": [-1, 2, 1]}', "the parent pointers form a cycle", 0),
    ('{"parents": [-1, -1]}', "a tree has one root (parent -1); these pointers have 2", 0),
    ('[1, ', "invalid JSON", 5),
])
def test_malformed_trees_are_located(text, message, col):
    text_out = error_text(read_tree, text, "trees.txt:7")
    assert message in text_out
    if col:
        assert text_out.startswith(f"trees.txt:7:{col}: error: ")
        assert text_out.splitlines()[2] == "    " + " " * (col - 1) + "^"


def test_unbalanced_text_shows_the_line_and_a_caret():
    assert error_text(read_tree, "(S (NP He) (VP wins)", "--tree") == (
        "--tree, column 1: error: unbalanced brackets: the `(` at column 1 is never closed\n"
        "    (S (NP He) (VP wins)\n"
        "    ^\n"
        "    hint: 3 `(` but 2 `)`")


def test_a_chain_10000_deep_reads_without_recursion():
    text = "a"
    for _ in range(10_000):
        text = f"(_ {text} b)"
    t = parse_tree(text)
    assert t.size == 20_001
    assert heights(t.parent).max() == 10_000
    assert t.to_text(limit=40).endswith("…")


# ---- the schedule --------------------------------------------------------------------------------

def _height_by_recursion(kids, i):
    return 0 if not kids[i] else 1 + max(_height_by_recursion(kids, k) for k in kids[i])


def test_schedule_groups_every_node_once_by_height_and_arity():
    trees = random_trees(30, (3, 12), None, 10, seed=4)
    forest = Forest.of(trees)
    sched = make_schedule(forest.parent)
    order = sched.order
    assert sorted(order.tolist()) == list(range(forest.size))
    pos = np.empty(forest.size, int)
    pos[order] = np.arange(forest.size)
    has = forest.parent >= 0
    assert (pos[np.flatnonzero(has)] < pos[forest.parent[has]]).all()  # children before parents
    for t, tree in enumerate(trees):
        kids = tree.children()
        for i in range(tree.size):
            assert sched.height[forest.offsets[t] + i] == _height_by_recursion(kids, i)
    for g in sched.groups:
        assert (sched.height[g.nodes] == g.height).all()
        assert (sched.nchildren[g.nodes] == g.arity).all()
        assert (sched.order[g.rows] == g.nodes).all()
        for node, children in zip(g.nodes, sched.children(g)):
            local = [k for k in range(forest.size) if forest.parent[k] == node]
            assert children.tolist() == local  # in order
    assert len({(g.height, g.arity) for g in sched.groups}) == len(sched.groups)


def test_a_level_spans_every_tree_of_the_batch():
    forest = Forest.of([parse_tree(PTB), parse_tree(SST), parse_tree("(S (A a) (B b))")])
    sched = make_schedule(forest.parent)
    leaves = sched.groups[0]
    assert leaves.height == 0 and set(forest.tree[leaves.nodes]) == {0, 1, 2}
    assert [(g.height, g.nodes.size) for g in sched.groups] == [(0, 8), (1, 3), (2, 2)]


def test_cycles_are_refused():
    with pytest.raises(DataError, match="cycle"):
        make_schedule(np.array([-1, 2, 1]))


@pytest.mark.parametrize("texts", [
    None,  # random trees of 2 and 3 children: heights that mix numbers of children
    ["(_ (_ (_ a b) (_ c d) (_ e f)) g)"],  # one number of children per height: 2, then 3, then 2
])
def test_rows_are_blocks_and_height_1_reads_its_children_in_place(texts):
    trees = [parse_tree(t) for t in texts] if texts else random_trees(40, (1, 12), None, 10, seed=8)
    forest = Forest.of(trees + [parse_tree("wins")])  # and a one-node tree
    sched = make_schedule(forest.parent)
    assert (sched.row[sched.order] == np.arange(forest.size)).all()
    assert [g.rows.start for g in sched.groups] == [0] + [g.rows.stop for g in sched.groups[:-1]]
    assert sched.groups[-1].rows.stop == forest.size
    assert (np.diff(sched.row_height) >= 0).all() and (sched.height[sched.order] == sched.row_height).all()
    for g in sched.groups:
        assert (sched.row[sched.children(g)] == g.child_rows).all()
        assert (g.child_rows < g.rows.start).all()  # children sit in earlier blocks
        if g.height == 1:  # all its children are leaves, laid out in the order it reads them
            assert (g.child_rows.ravel() == np.arange(g.child_block.start, g.child_block.stop)).all()
        else:
            assert g.child_block is None
    for node in range(forest.size):
        assert sched.children_of(node).tolist() == np.flatnonzero(forest.parent == node).tolist()


# ---- the fold against the references ----------------------------------------------------------------

def _params(program, seed=0, dtype="float64"):
    rng = np.random.default_rng(seed)
    return {k: rng.uniform(-0.5, 0.5, info.shape).astype(dtype) for k, info in program.params.items()}


def _trees(program, n=20, seed=1):
    cell = program.plan.fold.cell
    return random_trees(n, (1, 9), cell.arity, len(program.vocab.tokens), seed)


def _reference(name, tree, p):
    node = ref.nested(tree)
    if name == "rvnn":
        hs = []
        ref.rvnn(node, p, hs)
        return np.array(hs)  # every node, preorder (random trees are numbered in preorder)
    h, c = (ref.childsum if name == "treelstm_childsum" else ref.nary)(node, p)
    return h


@pytest.mark.parametrize("name", TREE_SPECS)
@pytest.mark.parametrize("mode", ["level", "node"])
def test_fold_equals_the_papers_equations(programs, name, mode):
    prog = programs[name]
    p = _params(prog)
    trees = _trees(prog)
    result = rnncompile.run(prog, trees=trees, params=p, dtype="float64", mode=mode)
    for t, tree in enumerate(trees):
        want = _reference(name, tree, p)
        nodes = slice(result.forest.offsets[t], result.forest.offsets[t + 1])
        if name == "rvnn":
            np.testing.assert_allclose(result.nodes["h"][nodes], want, atol=1e-12)
            for i, h in enumerate(want):  # the head at every node
                y = ref.softmax(p["head.W_s"] @ h + p["head.b_s"])
                np.testing.assert_allclose(result.outputs["y"][result.forest.offsets[t] + i], y, atol=1e-12)
        else:
            np.testing.assert_allclose(result.final_state["h"][t], want, atol=1e-12)
            y = ref.softmax(p["head.W_s"] @ want + p["head.b_s"])
            np.testing.assert_allclose(result.outputs["p"][t], y, atol=1e-12)


@pytest.mark.parametrize("name", TREE_SPECS)
def test_blocks_of_a_few_rows_give_the_same_values(programs, name, monkeypatch):
    import rnncompile.trees.run as fold_driver

    prog = programs[name]
    p = _params(prog, seed=9)
    trees = _trees(prog, 30, seed=10)
    whole = rnncompile.run(prog, trees=trees, params=p, dtype="float64")
    monkeypatch.setattr(fold_driver, "BLOCK_BYTES", 1)
    monkeypatch.setattr(fold_driver, "MIN_BLOCK_ROWS", 3)  # every group (and the head) in blocks of 3 rows
    blocks = rnncompile.run(prog, trees=trees, params=p, dtype="float64")
    assert max(len(g.nodes) for g in blocks.schedule.groups) > 3
    for k in whole.outputs:  # the same sums, up to the rounding a BLAS may change with the row count
        np.testing.assert_allclose(blocks.outputs[k], whole.outputs[k], rtol=1e-13, atol=1e-15)
    for k in whole.nodes:
        np.testing.assert_allclose(blocks.nodes[k], whole.nodes[k], rtol=1e-13, atol=1e-15)


def test_the_node_rule_reads_the_gathered_children_without_a_copy(programs):
    """concat(children[0].h, children[1].h) is compiled to flatten(children.h): the same numbers, read in
    place from the children's rows; the checked graph (what diagrams draw) keeps the concat."""
    prog = programs["rvnn"]
    node = prog.cell(prog.plan.fold.node)
    ops = [node.node(n).op for n in node.g.nodes]
    assert "flatten" in ops and "concat" not in ops and "index" not in ops
    assert "concat" in [prog.plan.fold.node.cell.node(n).op for n in prog.plan.fold.node.cell.g.nodes]
    nary = programs["treelstm_nary"].cell(programs["treelstm_nary"].plan.fold.node)
    assert "flatten" in [nary.node(n).op for n in nary.g.nodes]  # and its five gates share one multiply
    swapped = rnncompile.compile_text((SPECS / "rvnn.yaml").read_text().replace(
        "concat(children[0].h, children[1].h)", "concat(children[1].h, children[0].h)"), str(SPECS / "swapped.yaml"))
    node = swapped.cell(swapped.plan.fold.node)
    assert "concat" in [node.node(n).op for n in node.g.nodes]  # not the rows in order: not a flatten


def test_flatten_needs_fixed_sizes():
    text = (SPECS / "treelstm_childsum.yaml").read_text()
    assert "sum(children.h, axis=0)" in text
    with pytest.raises(SpecError, match=r"flatten needs fixed sizes, got \[K, 16\]"):
        rnncompile.compile_text(text.replace("sum(children.h, axis=0)", "sum(flatten(children.h))", 1), "c.yaml")


@pytest.mark.parametrize("name", TREE_SPECS)
def test_float32_level_batched_is_within_1e5_of_the_reference(programs, name):
    prog = programs[name]
    p = _params(prog, seed=2)
    trees = _trees(prog, 50, seed=3)
    result = rnncompile.run(prog, trees=trees, params={k: v.astype("float32") for k, v in p.items()})
    per_node = rnncompile.run(prog, trees=result.forest, params={k: v.astype("float32") for k, v in p.items()},
                              mode="node")
    for t, tree in enumerate(trees):
        want = _reference(name, tree, p)
        got = result.nodes["h"][result.forest.offsets[t]:result.forest.offsets[t + 1]] if name == "rvnn" \
            else result.final_state["h"][t]
        np.testing.assert_allclose(got, want, atol=1e-5)
    for k in result.outputs:
        np.testing.assert_allclose(result.outputs[k], per_node.outputs[k], atol=1e-5)


@pytest.mark.torch
@pytest.mark.parametrize("name", TREE_SPECS)
def test_against_pytorch_per_node(programs, name):
    torch = pytest.importorskip("torch")
    prog = programs[name]
    p = _params(prog, seed=5, dtype="float32")
    tp = {k: torch.from_numpy(v) for k, v in p.items()}
    trees = _trees(prog, 25, seed=6)
    result = rnncompile.run(prog, trees=trees, params=p)
    fn = {"rvnn": lambda n: ref.torch_rvnn(torch, n, tp),
          "treelstm_childsum": lambda n: ref.torch_childsum(torch, n, tp)[0],
          "treelstm_nary": lambda n: ref.torch_nary(torch, n, tp)[0]}[name]
    with torch.no_grad():
        for t, tree in enumerate(trees):
            want = fn(ref.nested(tree)).numpy()
            np.testing.assert_allclose(result.final_state["h"][t], want, atol=1e-5)


def _left_chain(words: list[int]) -> Tree:
    """(((w0 w1) w2) ... wn) as parent pointers: inner node k (combining w0..wk) is node n - k, so the
    root is node 0; word k is node n + k. Children are ordered by index: left before right."""
    n = len(words) - 1
    parent = np.empty(2 * n + 1, np.int64)
    parent[0] = -1
    parent[1:n] = np.arange(0, n - 1)  # inner k's parent is inner k + 1
    parent[n] = n - 1  # w0 under inner 1
    parent[n + 1:] = n - np.arange(1, n + 1)  # wk under inner k
    return Tree.from_parents(parent, [-1] * n + list(words))


def test_a_left_branching_chain_10000_deep_runs_level_batched_and_per_node(programs):
    prog = programs["rvnn"]
    p = _params(prog, seed=7)
    words = np.random.default_rng(0).integers(0, 40, 10_001).tolist()
    level = rnncompile.run(prog, trees=[_left_chain(words)], params=p, dtype="float64")
    assert level.schedule.levels == 10_001 and level.forest.size == 20_001
    np.testing.assert_allclose(level.final_state["h"][0], ref.rvnn_chain(words, p), atol=1e-12)
    per_node = rnncompile.run(prog, trees=level.forest, params=p, dtype="float64", mode="node")
    np.testing.assert_allclose(per_node.nodes["h"], level.nodes["h"], atol=1e-12)


def test_a_deep_bracketed_chain_through_the_cli(cli, tmp_path):
    text = "a"
    for _ in range(10_000):
        text = f"(_ {text} b)"
    f = tmp_path / "chain.txt"
    f.write_text(text + "\n")
    code, out, err = cli("run", SPECS / "treelstm_nary.yaml", "--trees", f)
    assert code == 0, err
    assert "20001 nodes (10001 leaves), height 10000" in out


# ---- variable arity, labels, dependency trees ------------------------------------------------------

DEPENDENCY = """
rnncompile: 1
name: dep
vocab: {tokens: [a, b, c, d, e, f]}
dims: {E: 3, H: 4}
cells:
  tl:
    kind: tree
    arity: any
    inputs: {word: token}
    state: {h: H, c: H}
    params:
      E_w: [V, E]
      W_i: [H, E]
      W_f: [H, E]
      W_o: [H, E]
      W_u: [H, E]
      U_i: [H, H]
      U_f: [H, H]
      U_o: [H, H]
      U_u: [H, H]
      b_i: [H]
      b_f: [H]
      b_o: [H]
      b_u: [H]
    node:                      # no leaf rule: a leaf is a node with no children (K = 0)
      let:
        x: embed(word, E_w)
        h_sum: sum(children.h, axis=0)
        i: sigmoid(W_i @ x + U_i @ h_sum + b_i)
        f: sigmoid(W_f @ x + children.h @ U_f.T + b_f)
        o: sigmoid(W_o @ x + U_o @ h_sum + b_o)
        u: tanh(W_u @ x + U_u @ h_sum + b_u)
      c: i * u + sum(f * children.c, axis=0)
      h: o * tanh(c)
model: {fold: tl, input: {tree: tree}}
"""


def test_child_sum_on_dependency_trees_with_a_word_at_every_node():
    prog = rnncompile.compile_text(DEPENDENCY, "dep.yaml")
    assert prog.plan.fold.leaf is None
    p = _params(prog, seed=8)
    trees = [Tree.from_parents([3, 3, 0, 3, 4], [0, 1, 2, 3, 4]),  # 1-based: node 3 is the root
             Tree.from_parents([-1, 0, 0, 0, 0, 1], [5, 4, 3, 2, 1, 0])]
    result = rnncompile.run(prog, trees=trees, params=p, dtype="float64")
    assert {g.arity for g in result.schedule.groups} >= {0, 1, 4}
    for t, tree in enumerate(trees):
        h, c = ref.childsum(ref.nested(tree), p)
        np.testing.assert_allclose(result.final_state["h"][t], h, atol=1e-12)
        np.testing.assert_allclose(result.final_state["c"][t], c, atol=1e-12)
    text = error_text(rnncompile.run, prog, trees=["(S (A a) (B b))"])
    assert "node `S` has no word, but the node rule of cell `tl` reads `word`" in text


LABELS = """
rnncompile: 1
name: syntactic
vocab: {tokens: [a, b, S, NP, VP]}
dims: {H: 3}
cells:
  c:
    kind: tree
    arity: 2
    inputs: {word: token, label: token}
    state: {h: H}
    params: {L: [V, H], T: [V, H], W: [H, 2 * H]}
    leaf:
      h: embed(word, L) + embed(label, T)
    node:
      h: tanh(W @ concat(children[0].h, children[1].h) + embed(label, T))
model:
  fold: c
  head: {at: every_node, outputs: {y: h}}
"""


def test_labels_are_inputs_through_the_vocabulary():
    prog = rnncompile.compile_text(LABELS, "labels.yaml")
    assert prog.plan.fold.cell.reads == {"leaf": frozenset({"word", "label"}), "node": frozenset({"label"})}
    p = _params(prog)
    result = rnncompile.run(prog, trees=["(S (NP a) (VP b))"], params=p, dtype="float64")
    h_np = p["L"][0] + p["T"][3]
    h_vp = p["L"][1] + p["T"][4]
    h_s = np.tanh(p["W"] @ np.concatenate([h_np, h_vp]) + p["T"][2])
    np.testing.assert_allclose(result.outputs["y"], [h_s, h_np, h_vp], atol=1e-12)
    text = error_text(rnncompile.run, prog, trees=["(S a (VP b))"])
    assert "leaf `a` has no label, but the leaf rule of cell `c` reads `label`" in text
    assert "error: " in error_text(rnncompile.run, prog, trees=["(S (X a) (VP b))"])  # not in the vocabulary


def test_heads_at_the_root_and_at_every_node(programs):
    root = rnncompile.run(programs["treelstm_nary"], trees=[PTB, SST, "(S (A a) (B b))"])
    assert root.at == "root" and root.outputs["p"].shape == (3, 5)
    every = rnncompile.run(programs["rvnn"], trees=[PTB, SST, "(S (A a) (B b))"])
    assert every.at == "every_node" and every.outputs["y"].shape == (13, 5)
    assert [len(v) for v in every.per_tree(every.outputs["y"])] == [5, 5, 3]
    np.testing.assert_allclose(every.outputs["y"].sum(axis=1), 1, atol=1e-6)


def test_a_head_without_at_is_at_the_root():
    text = (SPECS / "rvnn.yaml").read_text().replace("    at: every_node                       # phrase-level labels; "
                                                    "`at: root` for one per sentence\n", "")
    prog = rnncompile.compile_text(text, str(SPECS / "rvnn_root.yaml"))
    assert prog.plan.head.at == "root"
    assert rnncompile.run(prog, trees=[PTB]).outputs["y"].shape == (1, 5)


def test_the_arity_of_a_fixed_arity_cell_is_checked(programs):
    text = error_text(rnncompile.run, programs["rvnn"], trees=["(S (NP the big cat) (VP sat))"])
    assert text.startswith("tree 0, column 4: error: node `NP` has 3 children, but cell `compose` takes exactly 2")
    assert "binarize" in text


def test_random_trees_fit_the_cell_and_are_seeded(programs):
    for name, prog in programs.items():
        a = rnncompile.run(prog, batch=6, seed=3)
        b = rnncompile.run(prog, batch=6, seed=3)
        assert a.forest.batch == 6
        np.testing.assert_array_equal(a.nodes["h"], b.nodes["h"])


def test_tree_model_api_errors(programs):
    with pytest.raises(DataError, match="reads trees, not input arrays"):
        rnncompile.run(programs["rvnn"], inputs={"x": np.zeros((1, 2, 3))})
    with pytest.raises(DataError, match="for tree models"):
        rnncompile.run(rnncompile.compile(SPECS / "elman.yaml"), trees=[PTB])
    with pytest.raises(DataError, match="is a int"):
        rnncompile.run(programs["rvnn"], trees=[3])


# ---- spec errors ------------------------------------------------------------------------------

BAD = """
rnncompile: 1
name: bad
dims: {H: 4}
vocab: {tokens: [a, b]}
cells:
  t:
    kind: tree
    arity: 2
    inputs: {word: token}
    state: {h: H}
    params: {L: [V, H], W: [H, 2 * H]}
    leaf:
      h: embed(word, L) + children.h
    node:
      h: tanh(W @ concat(children[0].h, children[2].h))
  s:
    kind: tree
    state: {h: H}
    params: {U: [H, H]}
    node:
      h: tanh(children[0].h)
  k:
    kind: tree
    state: {h: H}
    node:
      h: sum(children.h)
  step:
    inputs: {x: H}
    state: {h: H}
    update: {h: x}
    outputs: {y: h}
    leaf: {h: x}
model:
  fold: t
  head: {at: last, outputs: {y: h}}
"""


def test_tree_spec_errors_are_located():
    with pytest.raises(SpecError) as e:
        rnncompile.compile_text(BAD, "bad.yaml")
    text = e.value.format()
    assert "bad.yaml:14:27: error: a leaf has no children [cells.t.leaf.h]" in text
    assert "bad.yaml:16:50: error: child 2 does not exist: with `arity: 2` the children are 0..1" in text
    assert "bad.yaml:22:23: error: with `arity: any` children have no fixed positions [cells.s.node.h]" in text
    assert "error: the node rule gives `h` the shape [], but the state is [4] [cells.k.node.h]" in text
    assert "sum(x, axis=0) adds over the children" in text
    assert "error: `leaf` belongs to tree cells [cells.step.leaf]" in text
    assert "error: a tree has no steps: its head is at `root` (one result per tree) or `every_node`, not `last`" in text
    assert "shape mismatch" not in text  # the tree words replace the generic message


def test_scan_of_a_tree_cell_and_fold_of_a_step_cell():
    text = (SPECS / "elman.yaml").read_text()
    with pytest.raises(SpecError, match="`fold` needs a tree cell"):
        rnncompile.compile_text(text.replace("scan: elman", "fold: elman").replace("input: {x: [T, I]}", ""), "e.yaml")
    tree = (SPECS / "rvnn.yaml").read_text().replace("fold: compose", "scan: compose").replace(
        "input: {tree: tree}", "input: {x: [T, H]}")
    with pytest.raises(SpecError, match="is a tree cell: fold it over trees"):
        rnncompile.compile_text(tree, str(SPECS / "x.yaml"))
    seq_head = text.replace("model:\n", "model:\n  head: {at: root, outputs: {z: y}}\n")
    with pytest.raises(SpecError, match="`at: root` is for tree models"):
        rnncompile.compile_text(seq_head, "e.yaml")


def test_the_children_axis_prints_as_K(programs):
    from rnncompile.graph import to_text

    text = to_text(programs["treelstm_childsum"].plan.fold.node.cell)
    assert "input children.h : [K, 16]" in text
    assert ": [K, 16]  # cells.treelstm.node.let.f" in text  # one forget gate per child


# ---- the command line ------------------------------------------------------------------------------

def test_cli_run_a_tree_with_a_trace(cli):
    code, out, err = cli("run", SPECS / "rvnn.yaml", "--tree", "(S (NP He) (VP wins))", "--trace")
    assert code == 0, err
    assert "node 1  NP 'He'  (leaf rule, height 0, no children; tree 0)" in out
    assert "node 0  S  (node rule, height 1, children 1, 2; tree 0)" in out
    assert "children.h  [2, 16]" in out and "word  'he'" in out
    assert "rvnn: 1 tree, 3 nodes (2 leaves), height 1; level-batched in 2 groups" in out
    assert "y at every node" in out


def test_cli_trees_file_per_node_and_output(cli, tmp_path):
    out_file = tmp_path / "o.npz"
    bank = ROOT / "examples" / "trees" / "treebank.txt"
    code, a, err = cli("run", SPECS / "treelstm_nary.yaml", "--trees", bank, "-o", out_file)
    assert code == 0, err
    assert "12 trees, 86 nodes (49 leaves)" in a and "… 2 more trees" in a
    with np.load(out_file) as f:
        assert f["outputs.p"].shape == (12, 5) and f["nodes.h"].shape == (86, 16) and f["state.c"].shape == (12, 16)
        assert f["tree.parent"].shape == (86,) and f["tree.height"].max() == 4
    code, b, err = cli("run", SPECS / "treelstm_nary.yaml", "--trees", bank, "--per-node")
    assert code == 0 and "node by node" in b
    assert a.split("\n")[1:-2] == b.split("\n")[1:-1]  # the same numbers (the header and -o line aside)


def test_cli_random_trees_and_errors(cli, tmp_path):
    code, out, err = cli("run", SPECS / "treelstm_childsum.yaml", "--batch", 3)
    assert code == 0 and out.startswith("treelstm_childsum: 3 trees")
    code, out, err = cli("run", SPECS / "rvnn.yaml", "--tree", "(S (NP He) (VP wins)")
    assert code == 1 and err.startswith("--tree, column 1: error: unbalanced brackets")
    bad = tmp_path / "bad.txt"
    bad.write_text("(S (A a) (B b))\n(S (A a) (B b) (C c))\n")
    code, out, err = cli("run", SPECS / "rvnn.yaml", "--trees", bad)
    assert code == 1 and f"{bad}:2:1: error: node `S` has 3 children" in err
    code, out, err = cli("run", SPECS / "rvnn.yaml", "--steps", 3)
    assert code == 2 and "a tree model reads trees" in err
    code, out, err = cli("run", SPECS / "lstm.yaml", "--tree", "(a b)")
    assert code == 2 and "for tree models" in err


def test_cli_inspect_and_validate(cli):
    code, out, err = cli("validate", SPECS / "treelstm_childsum.yaml")
    assert code == 0 and out.strip().endswith("ok")
    code, out, err = cli("inspect", SPECS / "treelstm_childsum.yaml")
    assert code == 0, err
    assert out.startswith("treelstm_childsum: tree model (fold of cell `treelstm`, any number of children)")
    assert out.count("param  U_f ") == 1  # the rules share their weights: listed once


# ---- diagrams -------------------------------------------------------------------------------------

def test_tree_view_draws_every_node_with_its_rule_and_weights(programs):
    from rnncompile.render import dot_source

    dot = dot_source(programs["rvnn"], "tree", tree=PTB)
    assert dot.count("compose · leaf") == 3 and dot.count("compose · node") == 2
    assert "rankdir=BT" in dot and "W, b" in dot and "head: y" in dot
    for word in ("He", "is", "happy"):
        assert f"<b>{word}</b>" in dot
    assert "the same weights at every node" in dot
    root = dot_source(programs["treelstm_nary"], "tree", tree=PTB)
    assert "head [" in root and "U_f0" in root


def test_large_trees_elide():
    from rnncompile.render.tree import MAX_NODES, tree_dot

    prog = rnncompile.compile(SPECS / "rvnn.yaml")
    text = "a"
    for _ in range(10_000):
        text = f"(_ {text} b)"
    dot = tree_dot(prog, parse_tree(text))
    assert dot.count("compose · ") <= MAX_NODES
    assert "19,970 nodes" in dot and "a tree of 20,001 nodes" in dot


def test_folded_tree_cell_shows_the_recursion(programs):
    from rnncompile.render import dot_source

    dot = dot_source(programs["treelstm_childsum"], "cell")
    assert "cluster_leaf" in dot and "cluster_node" in dot
    assert dot.count("to the parent") >= 2 and "children.h" in dot and "children.c" in dot
    assert "b_i, b_o, b_u shared by both rules" in dot


@pytest.mark.skipif(__import__("rnncompile.render.engine", fromlist=["x"]).find_engine() is None,
                    reason="no layout engine")
def test_cli_render_tree_png(cli, tmp_path):
    for args, name in ((["--tree", PTB], "tree.png"), ([], "cell.png"), (["--view", "tree"], "sample.svg")):
        out = tmp_path / name
        code, text, err = cli("render", SPECS / "treelstm_nary.yaml", *args, "-o", out)
        assert code == 0, err
        assert out.stat().st_size > 1000
    code, text, err = cli("render", SPECS / "lstm.yaml", "--tree", PTB, "-o", tmp_path / "x.png")
    assert code == 2 and "for tree models" in err


# ---- the example ------------------------------------------------------------------------------------

def test_sentiment_example_runs():
    done = subprocess.run([sys.executable, str(ROOT / "examples" / "trees" / "sentiment.py")], capture_output=True,
                          text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert "11 of 12 sentences" in done.stdout
    assert "level-batched and per-node runs agree" in done.stdout


def test_every_view_of_a_tree_model_draws_the_tree_and_nothing_unrolls(programs):
    from rnncompile.errors import UsageError
    from rnncompile.render import dot_source

    for view in ("model", "unrolled", "tree"):
        assert "compose · node" in dot_source(programs["rvnn"], view)  # a sample parse tree
    with pytest.raises(UsageError, match="no time steps to unroll"):
        dot_source(programs["rvnn"], "unrolled", unroll="4")
    with pytest.raises(UsageError, match="for tree models"):
        dot_source(rnncompile.compile(SPECS / "lstm.yaml"), "tree")


OUTPUTS = """
rnncompile: 1
name: outs
vocab: {tokens: [a, b]}
dims: {H: 3}
cells:
  c:
    kind: tree
    inputs: {word: token}
    state: {h: H}
    params: {L: [V, H], U: [2, H]}
    leaf:
      h: embed(word, L)
    node:
      let:
        m: mean(children.h, axis=0)
      h: tanh(m)
    outputs:
      z: U @ h
model:
  fold: c
  head:
    at: every_node
    outputs: {q: z * 2}
"""


def test_cell_outputs_are_per_node_values_a_head_reads():
    prog = rnncompile.compile_text(OUTPUTS, "outs.yaml")
    p = _params(prog)
    result = rnncompile.run(prog, trees=["(_ a b a)"], params=p, dtype="float64")
    h = np.tanh(np.mean(p["L"][[0, 1, 0]], axis=0))  # mean over three children (arity any)
    np.testing.assert_allclose(result.nodes["h"][0], h, atol=1e-12)
    np.testing.assert_allclose(result.outputs["q"], 2 * result.nodes["z"], atol=1e-12)
    np.testing.assert_allclose(result.nodes["z"][1], p["U"] @ p["L"][0], atol=1e-12)
    bad = OUTPUTS.replace("      z: U @ h\n", "      z: U @ sum(children.h, axis=0)\n")
    with pytest.raises(SpecError, match="an output is computed at every node, leaves included"):
        rnncompile.compile_text(bad, "outs.yaml")
