"""gputrace: a trace compiler for array programs written with the NumPy API.

>>> import numpy as np, gputrace
>>> def cell(x, h, w, b):
...     return np.tanh(x @ w.T + b + h)
>>> x, h, w, b = (np.ones(s, np.float32) for s in [(3, 4), (3, 4), (4, 4), (4,)])
>>> traced = gputrace.trace(cell, (x, h, w, b))
>>> traced(x, h, w, b).shape
(3, 4)
"""
from . import display, log, nn  # (display registers the notebook views of graphs and kernels)
from .errors import (BackendUnavailableError, DeviceMismatchError, GputraceError, GraphFormatError,
                     KernelCompileError, SignatureError, TracerWarning, TracingCheckError, TracingError,
                     UnsupportedOperationError)
from .ir import Graph, Node, ScalarType, TensorType, Value
from .serialize import load, save
from .traced import Program, TracedFunction, TracedModule, check_trace, trace, trace_module

__version__ = "0.1.0"

log.configure_from_env()  # GPUTRACE_LOG=graph,fusion,kernels,cache switches on debug logging per topic

__all__ = [
    "trace", "trace_module", "check_trace", "save", "load", "nn",
    "TracedFunction", "TracedModule", "Program", "Graph", "Node", "Value", "TensorType", "ScalarType",
    "GputraceError", "UnsupportedOperationError", "SignatureError", "TracingError", "TracingCheckError",
    "GraphFormatError", "KernelCompileError", "BackendUnavailableError", "DeviceMismatchError", "TracerWarning",
]
