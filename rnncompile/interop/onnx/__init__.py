"""ONNX in: a model with RNN, GRU or LSTM nodes -> a readable spec and its weights.

ONNX stacks a recurrent node's gates in W [D, G*H, I] (over x), R [D, G*H, H]
(over h) and B [D, 2*G*H] (= [Wb, Rb]), gate order i o f c (LSTM), z r h (GRU);
the spec written here gives each gate its own W_g, R_g and one bias b_g (Wb +
Rb), except the GRU candidate's with linear_before_reset=1, whose Rb stays
inside r * (...). The graph around the nodes is read as a symbolic tensor per
value: which axis is time, batch, direction or features, so transposes,
squeezes and reshapes are followed rather than guessed. Anything that does
not map is refused with the node's name, its op type and what is unsupported.

The stages, one module each: model_file (read the file safely) -> walk (each value's
symbolic tensor, the graph's nodes in order; recurrent reads an RNN/GRU/LSTM node,
glue follows axes through the reshaping ops, activations maps ONNX's activation
functions, heads the ops after the last layer) -> spec_writer (the spec's text and
weights) -> imported (`import_model`, the whole import). run_as_onnx runs an
imported spec on the ONNX model's feeds, each output shaped as ONNX gives it.
"""
from .imported import Imported, import_model
from .model_file import read_model
from .run_as_onnx import run_like_onnx

__all__ = ["import_model", "run_like_onnx", "read_model", "Imported"]
