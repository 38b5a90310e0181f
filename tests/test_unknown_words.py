"""A word missing from the vocabulary is read as the unknown token, and every command says so the same way."""
from __future__ import annotations

import rnncompile
from conftest import SPECS

NOTE = "note: not in the vocabulary, read as '<unk>': 'zorbles'"


def test_run_tree_notes_an_unknown_word(cli):
    code, out, err = cli("run", SPECS / "treelstm_childsum.yaml", "--tree", "(S (NP He) (VP zorbles))")
    assert code == 0
    assert err.strip() == NOTE


def test_run_trees_file_notes_each_unknown_word_once(cli, tmp_path):
    trees = tmp_path / "trees.txt"
    trees.write_text("(S (NP He) (VP zorbles))\n(S (NP zorbles) (VP wins))\n")
    code, out, err = cli("run", SPECS / "rvnn.yaml", "--trees", trees)
    assert code == 0
    assert err.strip() == NOTE


def test_known_words_give_no_note(cli):
    code, out, err = cli("run", SPECS / "rvnn.yaml", "--tree", "(S (NP he) (VP wins))")
    assert code == 0 and err == ""


def test_the_python_api_carries_the_note_and_a_rerun_starts_afresh():
    program = rnncompile.compile(SPECS / "rvnn.yaml")
    assert rnncompile.run(program, trees=["(S (NP He) (VP zorbles))"]).note == NOTE
    assert rnncompile.run(program, trees=["(S (NP he) (VP wins))"]).note == ""


def test_complete_prints_the_same_note(cli):
    code, out, err = cli("complete", SPECS / "word_predictor.yaml", "-p", "the zorbles", "-n", "2")
    assert code == 0
    assert "note: not in the vocabulary, read as" in err and "'zorbles'" in err
