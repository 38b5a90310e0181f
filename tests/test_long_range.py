"""The long-range corpus (rnncompile.corpora.long_range), its shipped files, the final-word accuracy, the table
script, and the shipped LSTM predictor: it completes "... he speaks" and its weights are reproduced."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import rnncompile
from rnncompile.api import run
from rnncompile.corpora import long_range as lr
from rnncompile.params import make_params
from rnncompile.vocab import read_vocab_file

ROOT = Path(__file__).resolve().parents[1]
HERE = ROOT / "examples" / "long_range"
LSTM = ROOT / "specs" / "long_range_lstm.yaml"
WEIGHTS = HERE / "lstm.npz"
CHECKPOINT = HERE / "lstm_epoch29.npz"
TRAIN = ["train", LSTM, "--input", HERE / "k2" / "train.npz", "--epochs", "30", "--batch", "16", "--lr", "0.02",
         "--seed", "0", "--no-progress"]  # as make_weights.sh


def test_an_example_reads_like_the_lecture():
    rng = np.random.default_rng(3)
    line, language = lr.example(rng, 3)
    words = line.split()
    assert words[:4] == ["he", "was", "born", "in"] and words[-4:] == ["he", "speaks", language, "."]
    assert dict(lr.PAIRS)[words[4]] == language
    assert line.count(" . ") == 3 + 1  # after the country and after each distractor
    assert not set(words[5:-3]) & {c for pair in lr.PAIRS for c in pair}  # distractors never name one


def test_examples_are_seeded_and_ranges_are_uniform():
    assert lr.examples(20, 2, 0) == lr.examples(20, 2, 0) != lr.examples(20, 2, 1)
    counts = [line.count(" . ") - 1 for line in lr.examples(400, "0-3", 5)]
    assert set(counts) == {0, 1, 2, 3} and min(counts.count(k) for k in range(4)) > 60
    with pytest.raises(ValueError, match="write a count"):
        lr.parse_range("two")
    with pytest.raises(ValueError, match="the smaller first"):
        lr.parse_range("5-2")


def test_encode_shifts_by_one_and_finds_the_answer():
    lines = lr.examples(5, 1, 0) + lr.examples(3, 4, 0)
    data = lr.encode(lines)
    vocab = lr.vocabulary()
    for n, line in enumerate(lines):
        words = line.split()
        L = data["lengths"][n]
        assert L == len(words)
        assert [vocab[i] for i in data["w"][n, :L]] == words
        assert [vocab[i] for i in data["target"][n, :L]] == words[1:] + ["<eos>"]
        at = lr.answer_steps(data)[n]
        assert vocab[data["w"][n, at]] == "speaks" and vocab[data["target"][n, at]] == words[-2]
    with pytest.raises(ValueError, match="line 1: 'paris' is not in the long_range vocabulary"):
        lr.encode(["he was born in paris ."])


def test_shipped_files_are_what_the_committed_commands_write(tmp_path):
    assert read_vocab_file(ROOT / "specs" / "data" / "long_range_words.txt") == lr.vocabulary()
    script = (HERE / "make_data.sh").read_text()
    assert "for k in 0 2 5 10" in script and "--seed 0 --train 600 --test 200" in script
    for k in (0, 2, 5, 10):
        lines = lr.examples(800, k, 0)
        assert (HERE / f"k{k}" / "train.txt").read_text().splitlines() == lines[:600]
        assert (HERE / f"k{k}" / "test.txt").read_text().splitlines() == lines[600:]
        shipped = np.load(HERE / f"k{k}" / "train.npz")
        for key, value in lr.encode(lines[:600]).items():
            np.testing.assert_array_equal(shipped[key], value)


def test_the_generator_command(tmp_path):
    done = subprocess.run([sys.executable, "-m", "rnncompile.corpora.long_range", "-k", "0-2", "--train", "4",
                           "--test", "2", "-o", tmp_path / "d", "--print", "2"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("he was born in ") and f"wrote {tmp_path / 'd' / 'train.npz'}" in done.stdout
    assert len((tmp_path / "d" / "test.txt").read_text().splitlines()) == 2
    bad = subprocess.run([sys.executable, "-m", "rnncompile.corpora.long_range", "-k", "3-1", "--print", "1"],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "distractors '3-1': give counts from 0 up, the smaller first" in bad.stderr


def test_final_word_accuracy_matches_one_sentence_at_a_time():
    """Padded batches with lengths against each sentence's own prefix up to `speaks`, run alone."""
    program = rnncompile.compile(LSTM)
    params = make_params(program, 0, WEIGHTS)
    data = {k: v[:24] for k, v in np.load(HERE / "k5" / "test.npz").items()}
    right = 0
    for n in range(24):
        at = lr.answer_steps(data)[n]
        p = run(program, inputs={"w": data["w"][n:n + 1, :at + 1]}, params=params).outputs["p"]
        right += int(p[0, -1].argmax() == data["target"][n, at])
    assert lr.final_word_accuracy(program, params, data, batch=7) == pytest.approx(right / 24)


@pytest.mark.parametrize("country, language", [("france", "french"), ("japan", "japanese"), ("greece", "greek")])
def test_the_shipped_lstm_finishes_he_speaks(cli, country, language):
    prompt = f"he was born in {country} . she laughed . the dog slept . he speaks"
    code, stdout, err = cli("complete", LSTM, "--weights", WEIGHTS, "--prompt", prompt, "--greedy", "-n", "2")
    assert code == 0, err
    assert stdout.strip() == f"{prompt} {language} ."


def test_the_shipped_lstm_accuracy():
    program = rnncompile.compile(LSTM)
    params = make_params(program, 0, WEIGHTS)
    assert lr.final_word_accuracy(program, params, dict(np.load(HERE / "k2" / "test.npz"))) >= 0.9


def test_the_last_epoch_from_the_shipped_checkpoint_reproduces_the_weights(cli, tmp_path):
    """make_weights.sh's command, reduced to its last epoch by resuming from the epoch-29 checkpoint."""
    out = tmp_path / "w.npz"
    code, _, err = cli(*TRAIN, "--resume", CHECKPOINT, "--save-weights", out)
    assert code == 0, err
    got, want = np.load(out), np.load(WEIGHTS)
    assert set(got) == set(want)
    for k in want:
        np.testing.assert_allclose(got[k], want[k], rtol=1e-5, atol=1e-6, err_msg=k)


@pytest.mark.slow
def test_the_whole_command_reproduces_the_weights(cli, tmp_path):
    out = tmp_path / "w.npz"
    code, _, err = cli(*TRAIN, "--save-weights", out)
    assert code == 0, err
    got, want = np.load(out), np.load(WEIGHTS)
    for k in want:
        np.testing.assert_allclose(got[k], want[k], rtol=1e-4, atol=1e-5, err_msg=k)


def test_the_table_script_prints_a_table():
    done = subprocess.run([sys.executable, str(HERE / "table.py"), "--distractors", "0", "--seeds", "1",
                           "--epochs", "1", "--models", "RNN"], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert re.search(r"^\| 0 \| 0\.\d\d ± 0\.00 \|$", done.stdout, re.M), done.stdout
    assert "k=0 RNN seed 0:" in done.stderr
