"""Weights in and out of other frameworks: PyTorch state_dicts (torch_weights), their files (torch_files);
ONNX models in (the onnx package: `from rnncompile.interop.onnx import import_model`)."""
from .torch_cells import Layout, Unmatched, layout
from .torch_files import read_state_dict, write_state_dict
from .torch_weights import Converted, from_torch, looks_like_torch, parse_map, to_torch

__all__ = ["from_torch", "to_torch", "read_state_dict", "write_state_dict", "layout", "Layout", "Converted",
           "Unmatched", "looks_like_torch", "parse_map"]
