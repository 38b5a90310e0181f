"""Memory is estimated for the whole run before anything is allocated; options out of range are usage errors."""
from __future__ import annotations

import time

import pytest

import rnncompile
from rnncompile.data import MAX_RUN_ELEMENTS
from conftest import SPECS


def test_a_run_whose_outputs_do_not_fit_is_refused_with_the_figures(cli):
    start = time.perf_counter()
    code, out, err = cli("run", SPECS / "lstm.yaml", "--steps", "200000", "--batch", "64", "--dim", "H=256")
    assert time.perf_counter() - start < 5
    assert code == 1
    assert "internal error" not in err
    assert "error: the run (outputs 3.28e+09, inputs 1.02e+08, work before the loop 6.74e+07" in err
    assert "GiB as float32); the limit is 1.07e+09. Use a smaller --batch, --steps or --dim." in err


def test_a_traced_run_counts_every_steps_values(cli):
    code, out, err = cli("run", SPECS / "lstm.yaml", "--steps", "20000", "--batch", "64", "--dim", "H=256", "--trace")
    assert code == 1
    assert "every step's values (trace)" in err


def test_one_to_many_generation_counts_the_tokens_it_writes(cli):
    code, out, err = cli("run", SPECS / "captioner.yaml", "--steps", "1000000000")
    assert code == 1
    assert err.startswith("error: the run (outputs 2.1e+10")


def test_run_values_add_up_by_kind():
    program = rnncompile.compile(SPECS / "lstm.yaml")  # I=8, H=16
    parts = program.run_values(batch=3, steps=10)
    assert parts["inputs"] == 3 * 10 * 8
    assert parts["outputs"] == 3 * 10 * 16
    assert parts["final state"] == 3 * 32
    assert parts["params and constants"] > 4 * 16 * 24
    traced = program.run_values(batch=3, steps=10, trace=True)
    assert traced["every step's values (trace)"] > 10 * parts["one step's values"]


def test_inspect_shows_the_whole_run_estimate(cli):
    code, out, err = cli("inspect", SPECS / "lstm.yaml", "--no-graph", "--steps", "1000", "--batch", "8")
    assert code == 0
    line = next(x for x in out.splitlines() if "memory for the whole run" in x)
    assert "(batch 8, 1000 steps; `run` refuses more than 4.0 GiB)" in line
    assert "outputs 500.0 KiB" in out  # 8 * 1000 * 16 float32


def test_a_completion_too_long_for_memory_is_refused_at_once(cli):
    start = time.perf_counter()
    code, out, err = cli("complete", SPECS / "char_predictor.yaml", "-p", "hel", "--steps", "1000000000")
    assert time.perf_counter() - start < 5
    assert code == 1
    assert "error: 1,000,000,000 steps of completion (a distribution over 32 tokens each) would hold 3.2e+10" in err


@pytest.mark.parametrize("value", ["nan", "inf", "1e-320", "-1"])
def test_a_temperature_that_cannot_divide_is_a_usage_error(cli, value):
    code, out, err = cli("complete", SPECS / "char_predictor.yaml", "-p", "hel", "--temperature", value)
    assert code == 2
    assert "Warning" not in err and "internal error" not in err
    assert "temperature" in err


def test_a_tiny_temperature_message_points_to_greedy(cli):
    code, out, err = cli("complete", SPECS / "char_predictor.yaml", "-p", "hel", "--temperature", "1e-320")
    assert err.strip() == ("error: temperature 1e-320: give a number from 1e-06 to 1e+06 "
                           "(for the most likely token every time, use --greedy)")


@pytest.mark.parametrize("command", [["run"], ["export", "--backend", "c", "-o", "x.c"], ["plot", "-o", "x.png"],
                                     ["complete", "-p", "he"]])
def test_a_negative_seed_is_a_usage_error(cli, command):
    spec = SPECS / ("ntm.yaml" if command[0] == "plot" else "char_predictor.yaml")
    code, out, err = cli(command[0], spec, *command[1:], "--seed", "-1")
    assert code == 2
    assert "-1 is not in the range x>=0" in err


def test_the_budget_is_the_documented_one():
    assert MAX_RUN_ELEMENTS == 2**30
