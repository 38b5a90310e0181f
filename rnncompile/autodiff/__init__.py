"""Reverse-mode differentiation: cell graphs to backward cell graphs (cellgrad), the vector–Jacobian rules
keyed by the op table's names (rules), losses as graph nodes (losses), backpropagation through time over a
model's flow (bptt), and training (train)."""
from .bptt import GradProgram, Gradients
from .cellgrad import Backward, GradError, grad
from .rules import NO_RULE, VJP

__all__ = ["Backward", "GradError", "GradProgram", "Gradients", "grad", "NO_RULE", "VJP"]
