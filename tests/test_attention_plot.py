"""`rnncompile plot` of an encoder-decoder with attention: a source x target heatmap of the traced weights,
found from the graph (the softmax that weighs a memory input's rows), with the tokens on the axes."""
from pathlib import Path

import numpy as np
import pytest

import rnncompile
from rnncompile.plot import attention_weights

SPECS = Path(__file__).resolve().parents[1] / "specs"


@pytest.mark.parametrize("spec", ["attention_luong", "attention_bahdanau"])
def test_the_attention_weights_are_found_from_the_graph(spec):
    prog = rnncompile.compile(str(SPECS / f"{spec}.yaml"), optimize=False)
    cell = prog.cell(prog.plan.decoder.use)
    (nid,) = attention_weights(cell)
    assert cell.node(nid).label == "a" and cell.node(nid).op == "masked_softmax"


def test_plot_draws_the_heatmap_of_a_text(cli, tmp_path, monkeypatch):
    import rnncompile.plot as plot

    seen = {}
    real = plot.attention_heatmap

    def spy(weights, source, target, path, title="", mask=None):
        seen.update(weights=np.array(weights), source=source, target=target)
        return real(weights, source, target, path, title, mask)

    monkeypatch.setattr(plot, "attention_heatmap", spy)
    out = tmp_path / "a.png"
    code, stdout, err = cli("plot", SPECS / "attention_luong.yaml", "--text", "three one four", "--seed", "3",
                            "-o", out)
    assert code == 0, err
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert seen["source"] == ["three", "one", "four"]
    prog = rnncompile.compile(str(SPECS / "attention_luong.yaml"), optimize=False)
    res = rnncompile.run(prog, inputs={"src": np.array([[5, 3, 6]])}, seed=3, trace=True)
    produced = [prog.vocab.tokens[i] for i in res.tokens[0, :res.lengths[0]]]
    assert seen["target"] == produced
    np.testing.assert_allclose(seen["weights"], res.values["decoder.a"][0, :len(produced)], rtol=1e-6)
    np.testing.assert_allclose(seen["weights"][:, :3].sum(axis=1), 1.0, rtol=1e-5)
    assert np.all(seen["weights"][:, 3:] == 0.0)


def test_plot_text_longer_than_the_source_axis(cli, tmp_path):
    code, _, err = cli("plot", SPECS / "attention_luong.yaml", "--text", " ".join(["one"] * 9), "-o",
                       tmp_path / "a.png")
    assert code != 0 and "--text has 9 tokens; the source holds at most 7 (set a larger S with --dim)" in err
    assert not (tmp_path / "a.png").exists()


def test_plot_text_needs_an_encoder_decoder(cli, tmp_path):
    code, _, err = cli("plot", SPECS / "ntm.yaml", "--text", "a", "-o", tmp_path / "a.png")
    assert code != 0 and "--text draws an encoder-decoder's attention" in err
