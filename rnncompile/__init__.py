"""rnncompile: a declarative graph-spec compiler and simulator for recurrent neural networks."""
from .api import complete, lengths_from_mask, make_params, run
from .drivers import Executable, RunResult
from .check import check_file, check_text
from .errors import DataError, RnnCompileError, SpecError, UsageError
from .program import Program, compile, compile_text
from .trees import Forest, Tree, read_tree, read_trees

__all__ = ["compile", "compile_text", "run", "make_params", "complete", "lengths_from_mask", "Executable", "RunResult", "check_file", "check_text", "Program",
           "RnnCompileError", "SpecError", "UsageError", "DataError", "Tree", "Forest", "read_tree", "read_trees"]
__version__ = "0.1.0"
