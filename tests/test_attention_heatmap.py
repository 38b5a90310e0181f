"""rnncompile.plot.attention_heatmap: a decoder's attention weights as a source × target heatmap (a real PNG,
the tokens on its axes, masked positions blank), and its located errors."""
from __future__ import annotations

import numpy as np
import pytest

from rnncompile.errors import UsageError

pytest.importorskip("matplotlib")
from matplotlib import colormaps  # noqa: E402
from matplotlib.image import imread  # noqa: E402

from rnncompile.plot import attention_heatmap  # noqa: E402

SOURCE = ["two", "nine", "<unk>", "<s>", "<s>"]  # three real words, then padding
TARGET = ["four", "eight", "</s>"]


def _weights():
    w = np.zeros((4, 5))  # one step more than TARGET and two padded source steps
    w[:3, :3] = [[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.2, 0.2, 0.6]]
    return w


def _viridis_distance(rgb):
    """How far each pixel is from the nearest colour of the colormap (0 on it)."""
    ramp = colormaps["viridis"](np.linspace(0, 1, 256))[:, :3]
    return np.min(np.abs(rgb[..., None, :] - ramp).sum(-1), axis=-1)


def _drawn(monkeypatch):
    """Keeps the figure each savefig writes, and the pixel centre of every cell (i, j) of its heatmap."""
    from matplotlib.figure import Figure

    seen, real = {}, Figure.savefig

    def spy(fig, f, **kw):
        real(fig, f, **kw)
        ax = fig.axes[0]
        scale = kw.get("dpi", fig.dpi) / fig.dpi
        height = fig.bbox.height * scale

        def centre(i, j):
            x, y = ax.transData.transform((j, i)) * scale
            return int(round(height - y)), int(round(x))
        seen.update(ax=ax, centre=centre, masked=np.ma.getmaskarray(ax.images[0].get_array()))
    monkeypatch.setattr(Figure, "savefig", spy)
    return seen


def test_it_writes_a_png_with_the_real_positions_coloured_and_the_masked_ones_blank(tmp_path, monkeypatch):
    seen = _drawn(monkeypatch)
    out = attention_heatmap(_weights(), SOURCE, TARGET, tmp_path / "att.png", "attention, sequence 0",
                            mask=[1, 1, 1, 0, 0])
    assert out == tmp_path / "att.png"
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    img = imread(out)[..., :3]
    assert img.shape[0] > 100 and img.shape[1] > 200
    ramp = colormaps["viridis"](_weights()[:3, :5])[..., :3]
    for i in range(3):
        for j in range(5):
            r, c = seen["centre"](i, j)
            patch = img[r - 3:r + 4, c - 3:c + 4].reshape(-1, 3)  # around the centre, off the printed number
            corner = img[r - 12, c - 16]
            if j < 3:
                np.testing.assert_allclose(corner, ramp[i, j], atol=0.02, err_msg=f"cell {i}, {j} has not its colour")
            else:  # padding: white with grey hatching, no colour of the map
                assert _viridis_distance(patch).min() > 0.05 and patch.mean() > 0.75, f"cell {i}, {j} is not blank"
    assert seen["masked"][:, 3:].all() and not seen["masked"][:, :3].any()
    assert seen["masked"].shape == (3, 5)  # the step past the last produced token is not drawn


def test_nan_entries_are_blank_and_the_tokens_label_the_axes(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    w = _weights()[:3, :3].copy()
    w[1, 2] = np.nan
    seen = {}
    from matplotlib.figure import Figure

    real = Figure.savefig

    def spy(fig, *a, **k):
        ax = fig.axes[0]
        seen["x"] = [t.get_text() for t in ax.get_xticklabels()]
        seen["y"] = [t.get_text() for t in ax.get_yticklabels()]
        seen["labels"] = (ax.get_xlabel(), ax.get_ylabel())
        seen["masked"] = np.ma.getmaskarray(ax.images[0].get_array())
        return real(fig, *a, **k)

    Figure.savefig = spy
    try:
        attention_heatmap(w, SOURCE[:3], TARGET, tmp_path / "att.svg", "t")
    finally:
        Figure.savefig = real
    assert seen["x"] == SOURCE[:3] and seen["y"] == TARGET and seen["labels"] == ("source", "produced")
    assert seen["masked"].tolist() == [[False] * 3, [False, False, True], [False] * 3]
    assert (tmp_path / "att.svg").read_text().lstrip().startswith("<?xml")


@pytest.mark.parametrize("args,message", [
    ((np.zeros(5), SOURCE, TARGET, "a.png"), r"must be \[target steps, source steps\], got shape \[5\]"),
    ((np.zeros((4, 5)), SOURCE + ["x"], TARGET, "a.png"), "6 source and 3 target tokens for weights over 5 source"),
    ((np.zeros((4, 5)), [], TARGET, "a.png"), "give at least one of each"),
    ((np.zeros((4, 5)), SOURCE, TARGET, "a.jpg"), r"write the picture as \.png, \.svg, \.pdf"),
])
def test_bad_arguments_are_clear_errors_and_leave_no_file(tmp_path, args, message):
    *rest, name = args
    with pytest.raises(UsageError, match=message):
        attention_heatmap(*rest, tmp_path / name, "t")
    assert not list(tmp_path.iterdir())


def test_a_mask_of_the_wrong_shape_is_a_clear_error(tmp_path):
    with pytest.raises(UsageError, match=r"the mask's shape \[3\] does not fit weights of shape \[4, 5\]"):
        attention_heatmap(np.zeros((4, 5)), SOURCE, TARGET, tmp_path / "a.png", mask=[1, 0, 1])
