"""Attacks on the code generators: nothing in a spec or a file name may become code (issue 15, items 1-3).

A corpus of hostile strings goes into every position that reaches generated code. Free text (the
description, the spec's file name, the exported file's name, the weights file's name, vocabulary tokens)
is accepted and must come out as inert text: the exported Python imports and its docstring reads back
exactly, the exported C builds with `-std=c99 -pedantic -Werror` (trigraphs on) and nothing hostile
survives its preprocessor, both run like the interpreter, and no `PWNED` file ever appears. Names (the
spec's, a cell's, an input's, a state's, a param's, ...) must be ASCII identifiers: anything else is
refused at load time with a located error, so no name can reach a file path or an identifier.
"""
from __future__ import annotations

import ast
import importlib.util
import io
import json
import re
import shutil
import subprocess
import tokenize
from pathlib import Path

import numpy as np
import pytest

import rnncompile
from rnncompile.backends.c import build
from rnncompile.backends.c.names import comment, comment_text
from rnncompile.backends.c.names import string as c_string
from rnncompile.backends.python.names import comment as py_comment
from rnncompile.backends.python.names import docstring
from rnncompile.backends.python.names import string as py_string
from rnncompile.api import make_params
from rnncompile.naming import file_stem, identifier, is_name
from test_backends_conformance import TOL
from test_export_c import STRICT, run_exported

HAS_CC = build.find_compiler() is not None
needs_cc = pytest.mark.skipif(not HAS_CC, reason="no C compiler on PATH")

HOSTILE = [
    '*/ system("touch PWNED"); /*',  # ends a C comment
    '"""; import os; os.system("touch PWNED") #',  # ends a Python docstring
    "'''; import os; os.system('touch PWNED') #",
    "\\N{",  # a named escape that never ends: the module would not import
    "??/",  # a trigraph: a backslash, even in a C comment
    "*??/\n/ system(\"touch PWNED\"); /*",  # a trigraph line splice that forms */
    "x \\",  # a trailing backslash: a line splice
    "\\\\ \\n \\x41 \\u0041",
    "\nimport os; os.system('touch PWNED')\n",
    "\rimport os; os.system('touch PWNED') #",  # \r ends a line for Python's tokenizer
    "\u2028import os; os.system('touch PWNED')\u2029",
    "\x0cimport os; os.system('touch PWNED')",
    "\x00 NUL",
    "\ud800 lone surrogate",
    "%s %d {0} {name} $(touch PWNED) `touch PWNED`",
    "é ｙ 字 \U0001F600",
]
IDS = [f"h{i}" for i in range(len(HOSTILE))]


def _path_safe(text: str) -> bool:
    """Whether the file system here takes `text` in a file name."""
    return "/" not in text and "\x00" not in text and "\ud800" not in text


def files_under(root: Path) -> list[str]:
    """Every file under `root` (an output folder may be made before the spec is read; it stays empty)."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if not p.is_dir())


def assert_no_pwned(*roots: Path) -> None:
    for root in roots:
        assert not list(root.rglob("PWNED")), f"code from a spec ran under {root}"


# ---- the escaping functions themselves ----------------------------------------------------------

@pytest.mark.parametrize("text", HOSTILE, ids=IDS)
def test_python_literals_read_back_exactly(text):
    for literal in (docstring(text), py_string(text)):
        tree = ast.parse("x = " + literal)
        assert len(tree.body) == 1 and ast.literal_eval(literal) == text
    assert py_string(text).isascii()
    line = "x = 1  # " + py_comment(text)
    tokens = list(tokenize.generate_tokens(io.StringIO(line + "\n").readline))
    assert [t.type for t in tokens if t.type not in (tokenize.NEWLINE, tokenize.ENDMARKER)] == \
        [tokenize.NAME, tokenize.OP, tokenize.NUMBER, tokenize.COMMENT]
    assert len(line.splitlines()) == 1


@pytest.mark.parametrize("text", HOSTILE, ids=IDS)
def test_c_comment_text_cannot_end_the_comment(text):
    for body in (comment(text), "/*\n * " + "\n * ".join(comment_text(text).split("\n")) + "\n */"):
        inner = body[2:-2]
        assert "*/" not in inner and "/*" not in inner and "??" not in body
        assert not any(line.endswith("\\") for line in body.split("\n"))
        assert all(ch.isprintable() for line in body.split("\n") for ch in line)
    assert "\n" not in comment(text)


@needs_cc
def test_c_string_literals_hold_the_bytes_and_c_comments_hold_nothing(tmp_path):
    """Every literal printed by a strictly built program gives back its UTF-8; every comment vanishes in the
    preprocessor (the program reads the same to the compiler with them and without them)."""
    def program(comments: bool) -> Path:
        lines = ["#include <stdio.h>", "int main(void)", "{"]
        for text in HOSTILE:
            if comments:
                lines += [comment(text), "/*", *(" * " + x for x in comment_text(text).split("\n")), " */"]
            lines += [f"    fwrite({c_string(text)}, 1, sizeof {c_string(text)} - 1, stdout);", "    putchar(0);"]
        src = tmp_path / f"strings{int(comments)}.c"
        src.write_text("\n".join(lines + ["    return 0;", "}", ""]), encoding="utf-8")
        return src

    src = program(comments=True)
    assert preprocessed(src) == preprocessed(program(comments=False))
    exe = tmp_path / "strings"
    done = subprocess.run([*build.compiler(), *STRICT, "-o", str(exe), str(src)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    out = subprocess.run([str(exe)], capture_output=True, check=True, cwd=tmp_path).stdout
    assert out == b"".join(t.encode("utf-8", "surrogatepass") + b"\0" for t in HOSTILE)
    assert_no_pwned(tmp_path)


@pytest.mark.parametrize("text", HOSTILE + ["../../escaped/evil", "..", ".", "", "a/b\\c", "con", "-rf"], ids=repr)
def test_file_stems_stay_in_their_folder(tmp_path, text):
    stem = file_stem(text)
    assert is_name(stem) and is_name(identifier(text))
    assert (tmp_path / f"{stem}.c").resolve().parent == tmp_path.resolve()


# ---- hostile free text through every command ------------------------------------------------------

SPEC = """\
rnncompile: 1
name: hostile
description: {description}
vocab:
  level: word
  tokens: {tokens}
dims: {{E: 3, H: 4, T: 5}}
cells:
  embedding:
    description: {description}
    inputs: {{w: token}}
    params: {{E_w: {{shape: [V, E], init: normal}}}}
    outputs: {{x: "embed(w, E_w)"}}
  rnn:
    inputs: {{x: E}}
    state: {{h: H}}
    params: {{W: {{shape: [H, H + E]}}, b: {{shape: [H], init: zeros}}}}
    update: {{h: "tanh(W @ concat(h, x) + b)"}}
    outputs: {{h: h}}
model:
  input: {{w: [T]}}
  layers:
    - {{scan: embedding}}
    - {{scan: rnn}}
  head:
    params: {{W_y: {{shape: [V, H]}}}}
    outputs: {{p: "softmax(W_y @ h)"}}
"""


def hostile_spec(folder: Path, text: str, plain: bool = False) -> Path:
    """The spec above with `text` among its tokens and as its description, in a file named after `text`
    where the file system allows it (`plain`: the same tokens, a harmless description and file name)."""
    tokens = list(dict.fromkeys(["a", text, text + "2", *(t for t in HOSTILE if t != text)]))
    spec = folder / (f"{text}.yaml" if _path_safe(text) and not plain else "hostile.yaml")
    description = "plain" if plain else text
    spec.write_text(SPEC.format(description=json.dumps(description), tokens=json.dumps(tokens)), encoding="utf-8")
    return spec


def python_code_outside_literals(source: str) -> str:
    """The module's tokens that are neither literals nor comments (where injected code would be)."""
    tokens = tokenize.generate_tokens(io.StringIO(source).readline)
    return " ".join(t.string for t in tokens if t.type not in (tokenize.STRING, tokenize.COMMENT))


@pytest.mark.parametrize("text", HOSTILE, ids=IDS)
def test_hostile_text_exports_to_python_that_imports_and_runs_like_the_interpreter(cli, tmp_path, text):
    spec = hostile_spec(tmp_path, text)
    out = tmp_path / (f"{text}.py" if _path_safe(text) else "hostile_model.py")
    code, _, err = cli("export", spec, "--backend", "python", "-o", out, cwd=tmp_path)
    assert code == 0, err
    source = out.read_text(encoding="utf-8")
    assert "PWNED" not in python_code_outside_literals(source) and "system" not in python_code_outside_literals(source)
    loader = importlib.util.spec_from_file_location("hostile_export", out)
    module = importlib.util.module_from_spec(loader)
    loader.loader.exec_module(module)
    assert f"from {spec.name}." in module.__doc__ and f"import {out.stem} as model" in module.__doc__
    program = rnncompile.compile(spec)
    params = make_params(program, seed=0)
    ids = np.random.default_rng(0).integers(0, len(program.vocab.tokens), (2, 5))
    want = rnncompile.run(program, inputs={"w": ids}, params=params)
    outputs, _ = module.run(params, {"w": ids})
    np.testing.assert_allclose(outputs["p"], want.outputs["p"], **TOL["float32"])
    assert_no_pwned(tmp_path)


def preprocessed(src: Path) -> list[str]:
    """What the C compiler reads of `src` once the preprocessor has dropped its comments."""
    done = subprocess.run([*build.compiler(), "-std=c99", "-E", "-P", "-"], input=src.read_bytes(), capture_output=True)
    assert done.returncode == 0, done.stderr
    return [x for x in done.stdout.decode("utf-8", "surrogateescape").splitlines() if x.strip()]


def c_code_outside_literals(lines: list[str]) -> str:
    """The preprocessed C without its string literals (a vocabulary's tokens live there, escaped)."""
    return re.sub(r'"(?:\\.|[^"\\\n])*"', '""', " ".join(lines))


@needs_cc
@pytest.mark.parametrize("text", HOSTILE, ids=IDS)
def test_hostile_text_exports_to_c_that_builds_strictly_and_runs_like_the_interpreter(cli, tmp_path, text):
    spec = hostile_spec(tmp_path, text)
    program = rnncompile.compile(spec)
    params = make_params(program, seed=0)
    weights = tmp_path / (f"{text}.npz" if _path_safe(text) else "weights.npz")
    np.savez(weights, **params)
    out = tmp_path / (f"{text}.c" if _path_safe(text) else "hostile.c")
    code, _, err = cli("export", spec, "--backend", "c", "--weights", weights, "-o", out, cwd=tmp_path)
    assert code == 0, err
    name = identifier(out.stem)  # the file's API prefix
    if out.name != f"{name}.c":
        shutil.copy(out, tmp_path / f"{name}.c")
    plain = tmp_path / "plain"
    plain.mkdir()
    plain_spec = hostile_spec(plain, text, plain=True)
    np.savez(plain / "weights.npz", **params)
    code, _, err = cli("export", plain_spec, "--backend", "c", "--weights", plain / "weights.npz", "-o", plain / out.name)
    assert code == 0, err
    assert preprocessed(tmp_path / out.name) == preprocessed(plain / out.name)  # they differ in comments only
    face = rnncompile.registry.get("c").export(program, spec.name, name, params, "float32").interface
    ids = np.random.default_rng(0).integers(0, len(program.vocab.tokens), (3, 5))
    got = run_exported(tmp_path, name, face, "float32", {"w": ids}, {}, None, None)  # builds with STRICT
    want = rnncompile.run(program, inputs={"w": ids}, params=params)
    for i, (outs, _) in enumerate(got):
        np.testing.assert_allclose(outs["p"].reshape(5, -1), want.outputs["p"][i], **TOL["float32"])
    assert_no_pwned(tmp_path)


@pytest.mark.parametrize("backend", ["python", pytest.param("c", marks=needs_cc)])
@pytest.mark.parametrize("text", HOSTILE, ids=IDS)
def test_hostile_text_runs_on_every_backend_like_numpy_and_codegens_into_its_folder(cli, tmp_path, text, backend):
    spec = hostile_spec(tmp_path, text)
    results = {}
    for name in ("numpy", backend):
        target = tmp_path / f"{name}.npz"
        code, _, err = cli("run", spec, "--backend", name, "--batch", 2, "-o", target, cwd=tmp_path)
        assert code == 0, err
        with np.load(target) as f:
            results[name] = {k: f[k] for k in f.files}
    for k, v in results["numpy"].items():
        np.testing.assert_allclose(results[backend][k], v, err_msg=k, **TOL["float32"])
    build_dir = tmp_path / "build"
    code, out, err = cli("codegen", spec, "--target", backend, "-o", build_dir, cwd=tmp_path)
    assert code == 0, err
    written = sorted(p.name for p in build_dir.iterdir())
    assert written == ["hostile.c" if backend == "c" else "hostile_model.py"]
    source = build_dir / written[0]
    if backend == "python":
        text = source.read_text(encoding="utf-8")
        ast.parse(text)
        assert "PWNED" not in python_code_outside_literals(text)
    else:
        done = subprocess.run([*build.compiler(), *STRICT, "-c", "-o", str(tmp_path / "hostile.o"), str(source)],
                              capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        assert "PWNED" not in c_code_outside_literals(preprocessed(source))
    assert_no_pwned(tmp_path)


# ---- names: refused at load time, located -------------------------------------------------------

NAMED = """\
rnncompile: 1
name: {spec_name}
dims: {{I: 2, H: 3, T: 4, {dim}: 2}}
cells:
  {cell}:
    inputs: {{x: I, {input}: I}}
    state: {{h: H, {state}: H}}
    params: {{W: {{shape: [H, H + I]}}, {param}: {{shape: [H]}}}}
    gates: {{{gate}: {{act: tanh, from: [x]}}}}
    let: {{{let}: h}}
    update: {{h: "tanh(W @ concat(h, x))", {state}: h}}
    outputs: {{h: h, {output}: h}}
model:
  input: {{x: [T, I], {model_input}: [T, I]}}
  scan: {cell}
"""
POSITIONS = ["spec_name", "dim", "cell", "input", "state", "param", "gate", "let", "output", "model_input"]
PLAIN = {"spec_name": "named", "dim": "K", "cell": "rnn", "input": "x2", "state": "s", "param": "b", "gate": "g",
         "let": "l", "output": "y", "model_input": "x2"}
BAD_NAMES = [t for t in HOSTILE if t.strip()] + ["../../escaped/evil", "ｙ", "é", "9lives", "a-b", "a b"]


def named_spec(folder: Path, position: str, bad: str) -> tuple[Path, int]:
    """The spec with `bad` at `position` (the spec's name is a value, every other one a key), and the
    line it sits on."""
    names = {k: (json.dumps(bad) if k == position else v) for k, v in PLAIN.items()}
    if position == "input":
        names["model_input"] = names["input"]
    text = NAMED.format(**names)
    spec = folder / "named.yaml"
    spec.write_text(text, encoding="utf-8")
    line = next(i for i, x in enumerate(text.splitlines(), 1) if json.dumps(bad) in x)
    return spec, line


@pytest.mark.parametrize("position", POSITIONS)
@pytest.mark.parametrize("bad", BAD_NAMES, ids=lambda b: repr(b)[:40])
def test_a_name_that_is_not_an_ascii_identifier_is_refused_where_it_stands(cli, tmp_path, position, bad):
    spec, line = named_spec(tmp_path, position, bad)
    build_dir = tmp_path / "build"
    for target in ("c", "python"):
        code, out, err = cli("codegen", spec, "--target", target, "-o", build_dir, cwd=tmp_path)
        assert code == 1, err
        assert "Traceback" not in err and "internal error" not in err
        assert f"named.yaml:{line}:" in err and "is not a name" in err
        assert "hint: " in err and "letters, digits and _" in err
        lines = err.split("\n")
        at = next(i for i, x in enumerate(lines) if "is not a name" in x)
        assert set(lines[at + 2].strip()) == {"^"} and lines[at + 3].startswith("    hint: ")
        assert all(ch.isprintable() for x in lines[at:at + 4] for ch in x)  # the terminal is sent no control character
    assert files_under(tmp_path) == ["named.yaml"]
    assert_no_pwned(tmp_path)



def model_positions_spec(folder: Path, where: tuple, bad: str) -> tuple[Path, int]:
    """A stacked model with a head, a context input and a vocabulary, `bad` at `where` (a mapping: one more
    key; else the value), written one entry a line; and the line `bad` sits on."""
    spec = {"rnncompile": 1, "name": "m", "dims": {"I": 2, "H": 3, "T": 4},
            "vocab": {"tokens": ["a", "b"], "dim": "V"},
            "cells": {"rnn": {"inputs": {"x": "I"}, "state": {"h": "H"}, "params": {"W": {"shape": ["H", "H + I"]}},
                              "update": {"h": "tanh(W @ concat(h, x))"}, "outputs": {"h": "h"}}},
            "model": {"input": {"x": ["T", "I"]}, "context": {"z": [2]}, "layers": [{"scan": "rnn", "dims": {"H": 3}}],
                      "head": {"params": {"W_y": {"shape": ["V", "H + 2"]}}, "let": {"a": "concat(h, z)"},
                               "outputs": {"y": "softmax(W_y @ a)"}}}}
    if where[-1] == "memory":
        spec["cells"]["rnn"]["memory"] = {"slots": 4, "width": 2, "controller": "h", "name": bad}
    else:
        parent = spec
        for part in where[:-1]:
            parent = parent[part]
        if isinstance(parent[where[-1]], dict):
            parent[where[-1]][bad] = next(iter(parent[where[-1]].values()))
        else:
            parent[where[-1]] = bad
    text = json.dumps(spec, indent=1)
    path = folder / "m.yaml"
    path.write_text(text, encoding="utf-8")
    return path, next(i for i, x in enumerate(text.splitlines(), 1) if json.dumps(bad) in x)


MODEL_POSITIONS = [("model", "head", "outputs"), ("model", "head", "params"), ("model", "head", "let"),
                   ("model", "context"), ("model", "input"), ("model", "layers", 0, "dims"), ("vocab", "dim"),
                   ("cells", "rnn", "memory")]


@pytest.mark.parametrize("where", MODEL_POSITIONS, ids=lambda w: ".".join(map(str, w)))
@pytest.mark.parametrize("bad", [HOSTILE[0], HOSTILE[1], "ｙ", "../x"], ids=["c", "py", "fullwidth", "path"])
def test_names_in_the_model_and_vocabulary_are_refused_too(cli, tmp_path, where, bad):
    spec, line = model_positions_spec(tmp_path, where, bad)
    code, out, err = cli("export", spec, "--backend", "python", "-o", tmp_path / "m.py")
    assert code == 1, err
    assert f"m.yaml:{line}:" in err and "is not a name" in err and "Traceback" not in err
    assert files_under(tmp_path) == ["m.yaml"]

FULLWIDTH = """\
rnncompile: 1
name: folded
dims: {I: 2, H: 3, T: 4}
cells:
  rnn:
    inputs: {x: I}
    state: {h: H}
    params: {W: {shape: [H, H + I]}}
    update: {h: "tanh(W @ concat(h, x))"}
    outputs:
      y: h
      ｙ: 2 * h
model: {scan: rnn, input: {x: [T, I]}}
"""


def test_fullwidth_name_that_folds_into_another_is_refused(cli, tmp_path):
    """`y` and `ｙ` are two names to the checker and one to Python (NFKC): refused, with the reason."""
    spec = tmp_path / "folded.yaml"
    spec.write_text(FULLWIDTH, encoding="utf-8")
    code, out, err = cli("validate", spec)
    assert code == 1
    assert err == (
        f"{spec}:12:7: error: `ｙ` is not a name [cells.rnn.outputs.ｙ]\n"
        "          ｙ: 2 * h\n"
        "          ^\n"
        "    hint: `ｙ` reads as `y` (NFKC), which is named here too: rename one (names are ASCII letters, "
        "digits and _, not starting with a digit)\n"
        "1 error\n")
    spec.write_text(FULLWIDTH.replace("      y: h\n", ""), encoding="utf-8")
    code, out, err = cli("validate", spec)
    assert code == 1
    assert "hint: write `y` (names are ASCII letters, digits and _, not starting with a digit)" in err


def test_a_hostile_name_in_an_error_is_printed_escaped(cli, tmp_path):
    spec = tmp_path / "s.yaml"
    spec.write_text(NAMED.format(**{**PLAIN, "output": json.dumps("a\x1b[2Jb\rc")}))
    code, out, err = cli("validate", spec)
    assert code == 1
    assert "error: `a\\x1b[2Jb\\rc` is not a name [cells.rnn.outputs.a\\x1b[2Jb\\rc]" in err
    assert "\x1b" not in err and "\r" not in err


def test_spec_name_with_a_path_is_refused_and_nothing_is_written_outside_the_folder(cli, tmp_path):
    work = tmp_path / "a" / "b"
    work.mkdir(parents=True)
    spec = work / "evil.yaml"
    spec.write_text(FULLWIDTH.replace("name: folded", "name: ../../escaped/evil").replace("      ｙ: 2 * h\n", ""))
    for target in ("c", "python"):
        code, out, err = cli("codegen", spec, "--target", target, "-o", "build", cwd=work)
        assert code == 1
        err = "".join(x for x in err.splitlines(keepends=True) if not x.startswith("created directory "))
        assert err == (
            "evil.yaml:2:7: error: the spec's name `../../escaped/evil` is not a name [name]\n"
            "    name: ../../escaped/evil\n"
            "          ^\n"
            "    hint: it names the generated code and its files; names are ASCII letters, digits and _, not "
            "starting with a digit, e.g. `escaped_evil`\n"
            "1 error\n").replace("evil.yaml:", f"{spec}:")
    assert files_under(tmp_path) == ["a/b/evil.yaml"]
