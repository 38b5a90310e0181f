"""`inspect`'s cost section against FLOPs counted by hand from the equations.

The op table counts a matrix-vector product [m, n] @ [n] as 2mn, sigmoid and
tanh as 4 per element, add and mul as 1, softmax as 5, and embed, slice and
concat as 0. An LSTM step with state size H and input size E, as the passes
leave it (W @ concat(h, x) + b becomes W_h @ h + (W_x @ x + b): one more add), is
  4 gates:  2·4H·H + 2·4H·E for the two products, 4H + 4H for the adds, 4·4H for the activations
  c_next = f*c + i*g: 3H;  h = o * tanh(c_next): H + 4H
"""
from __future__ import annotations

from pathlib import Path

SPECS = Path(__file__).resolve().parent.parent / "specs"


def lstm_step(H: int, E: int) -> int:
    return 2 * 4 * H * H + 2 * 4 * H * E + 4 * H + 4 * H + 4 * 4 * H + 3 * H + H + 4 * H


def softmax_head(V: int, H: int) -> int:  # softmax(W @ h + b)
    return 2 * V * H + V + 5 * V


def cost_lines(out: str) -> dict[str, str]:
    section = out.split("\ncost\n", 1)[1].split("\n\n", 1)[0]
    rows = {}
    for line in section.splitlines():
        label, _, value = line.strip().partition("  ")
        rows[label] = value.strip()
    return rows


def test_seq2seq_counts_encoder_and_decoder_steps_apart(cli):
    H, E, S, T, V = 4, 3, 5, 7, 12  # source and decoder lengths differ on purpose
    code, out, err = cli("inspect", SPECS / "seq2seq.yaml", "--dim", f"H={H}", "--dim", f"E={E}",
                         "--dim", f"S={S}", "--dim", f"T={T}", "--batch", "2", "--no-graph")
    assert code == 0, err
    enc, dec = lstm_step(H, E), lstm_step(H, E) + softmax_head(V, H)
    assert (enc, dec) == (352, 520)  # the hand count, spelled out
    rows = cost_lines(out)
    assert rows["FLOPs per encoder step, per example"] == str(enc)
    assert rows["FLOPs per decoder step, per example"] == str(dec)
    whole = 2 * (enc * S + dec * T)  # 10,800; the old report gave 2 * (352 + 520) * 5 = 8,720
    assert rows["FLOPs for the whole run"].startswith(f"{whole / 1000:.2f}k  = (352 × 5 encoder steps + "
                                                      f"520 × 7 decoder steps) × batch 2"), rows
    assert out.splitlines()[0] == "seq2seq: seq2seq model, 5 source steps, up to 7 decoder steps, batch 2"


def test_a_head_at_the_last_step_runs_once(cli):
    H, E, C, T = 4, 3, 2, 6
    code, out, err = cli("inspect", SPECS / "sentiment.yaml", "--dim", f"H={H}", "--dim", f"E={E}",
                         "--dim", f"T={T}", "--no-graph")
    assert code == 0, err
    rows = cost_lines(out)
    assert rows["FLOPs per step, per example"] == str(lstm_step(H, E))
    assert rows["FLOPs once per sequence, per example"] == str(softmax_head(C, H))
    whole = lstm_step(H, E) * T + softmax_head(C, H)
    assert rows["FLOPs for the whole run"].startswith(f"{whole / 1000:.2f}k  = "), rows


def test_one_layer_keeps_the_short_form(cli):
    code, out, err = cli("inspect", SPECS / "lstm.yaml", "--no-graph")  # H=16, I=8, T=10
    assert code == 0, err
    rows = cost_lines(out)
    assert rows["FLOPs per step, per example"] == f"{lstm_step(16, 8) / 1000:.2f}k"
    assert rows["FLOPs for the whole run"] == f"{lstm_step(16, 8) * 10 / 1000:.2f}k"


def test_tree_model_counts_leaves_inner_nodes_and_heads(cli):
    """rvnn over one full binary tree of n leaves: n leaf rules (an embed: 0), n - 1 node rules
    (tanh(W @ concat(l, r) + b): 2·H·2H + H + 4H) and a softmax head at each of the 2n - 1 nodes."""
    H, C, n = 4, 3, 6
    code, out, err = cli("inspect", SPECS / "rvnn.yaml", "--dim", f"H={H}", "--dim", f"C={C}",
                         "--steps", str(n), "--no-graph")
    assert code == 0, err
    node, head = 2 * H * 2 * H + H + 4 * H, softmax_head(C, H)
    assert (node, head) == (84, 42)
    rows = cost_lines(out)
    assert rows["FLOPs per leaf, per example"] == "0"
    assert rows["FLOPs per inner node, per example"] == str(node)
    assert rows["FLOPs per head at a node, per example"] == str(head)
    total = (n - 1) * node + (2 * n - 1) * head
    assert total == 882
    assert rows["FLOPs for the whole run"] == (f"{total}  = 0 × {n} leaves + {node} × {n - 1} inner nodes"
                                               f" + {head} × {2 * n - 1} heads at nodes")
