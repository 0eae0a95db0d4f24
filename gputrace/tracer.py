"""Tracing: proxy arrays that run the real computation and record it as a graph.

``TracedArray`` wraps a concrete NumPy or CuPy array and the graph value that
stands for it. NumPy's protocols (``__array_ufunc__``, ``__array_function__``)
and Python's operators send every operation here; :func:`record` runs the op
on the concrete values (so the trace follows the path actually taken),
infers its types with the op table's rule, checks the two agree, and appends a
node with the user's source line. Tracing state lives in a context variable,
so threads trace independently.
"""
from __future__ import annotations

import contextlib
import contextvars
import functools
import inspect
import linecache
import operator
import os
import re
import sys
import threading
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from . import ops
from .errors import TracerWarning, TracingError, UnsupportedOperationError
from .ir import NONE_TYPE, SUPPORTED_DTYPES, Graph, ObjectType, ScalarType, SourceLocation, TensorType, Value

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
_LIBRARY_DIRS = tuple({os.path.join(os.path.dirname(os.path.abspath(np.__file__)), ""),  # "" adds the separator:
                       os.path.join(_PACKAGE_DIR, ""),  # a user's gputrace_demo/ is not the library
                       os.path.join(os.path.dirname(contextlib.__file__), "")})


def _is_library_file(filename: str) -> bool:
    """Code of gputrace, NumPy, CuPy or the standard library: never the user's line."""
    return filename.startswith(_LIBRARY_DIRS) or "/cupy/" in filename or filename.startswith("<frozen")


def user_location() -> SourceLocation | None:
    """The innermost stack frame outside gputrace, NumPy, CuPy and the standard library."""
    frame = sys._getframe(1)
    while frame is not None:
        filename = frame.f_code.co_filename
        if not _is_library_file(filename):
            col = 0
            try:
                positions = list(frame.f_code.co_positions())[frame.f_lasti // 2]
                col = positions[2] or 0
            except (AttributeError, IndexError):
                pass
            return SourceLocation(filename, frame.f_lineno, col, frame.f_code.co_name)
        frame = frame.f_back
    return None


def is_array(x: Any) -> bool:
    """A NumPy or CuPy array (CuPy recognised without importing it)."""
    return isinstance(x, np.ndarray) or type(x).__module__.startswith("cupy")


def array_module(values: Sequence[Any]) -> Any:
    for v in values:
        if is_array(v) and not isinstance(v, np.ndarray):
            import cupy
            return cupy
    return np


# ----------------------------------------------------------------------------- tracing state


@dataclass
class Frame:
    """One graph being recorded: the top level, or a module method being called."""
    graph: Graph
    module: Any = None
    self_value: Value | None = None
    module_values: dict[int, Value] = field(default_factory=dict)


class TracingState:
    def __init__(self, fn: Callable | None = None, reserved: Sequence[str] = ()):
        self.frames: list[Frame] = []
        self.fn = fn
        self.params: dict[str, Any] = {}        # name -> captured array
        self.reserved = set(reserved)            # names a captured array must not take (a module's arrays)
        self._param_ids: dict[int, str] = {}
        self.values: dict[Value, Any] = {}       # concrete value of every recorded value, for check_trace
        self.reads_shape = False
        self.frozen: list[tuple[SourceLocation | None, str]] = []  # where traced values became constants, and as what
        self._depends: dict[Value, bool] = {}  # depends_on_arguments, as found
        self.active = True

    @property
    def frame(self) -> Frame:
        return self.frames[-1]

    @property
    def graph(self) -> Graph:
        return self.frame.graph

    # -- values of things that are not proxies
    def constant(self, x: Any) -> Value:
        if x is None:
            t = NONE_TYPE
        elif isinstance(x, (bool, int, float)) and not isinstance(x, np.generic):
            t = ScalarType(type(x))
        elif isinstance(x, np.generic):
            check_dtype(x.dtype, f"the NumPy scalar {x!r}")
            t = TensorType.of(np.asarray(x))
        else:
            raise unsupported(f"a constant of type {type(x).__name__} ({str(x)[:60]})")
        node = self.graph.add_node("prim::Constant", [], [t], attrs={"value": x}, source=user_location())
        self.values[node.output] = x
        return node.output

    def captured(self, array: Any) -> Value:
        """A graph value for an array captured from the enclosing scope (a parameter of the graph)."""
        name = self._param_ids.get(id(array))
        if name is None:
            check_plain_array(array, "a captured array")
            check_dtype(array.dtype, "a captured array")
            name = self._name_for_captured(array)
            self._param_ids[id(array)] = name
            self.params[name] = array
        for node in self.graph.nodes:  # one Param node per graph and name
            if node.kind == "prim::Param" and node.attrs["name"] == name:
                return node.output
        node = self.graph.add_node("prim::Param", [], [TensorType.of(array)], attrs={"name": name},
                                   source=user_location(), output_names=[name])
        self.values[node.output] = array
        return node.output

    def _name_for_captured(self, array: Any) -> str:
        fn = self.fn
        candidates: dict[str, Any] = {}
        if fn is not None and hasattr(fn, "__code__"):
            if fn.__closure__:
                for var, cell in zip(fn.__code__.co_freevars, fn.__closure__):
                    with contextlib.suppress(ValueError):
                        candidates[var] = cell.cell_contents
            for var in fn.__code__.co_names:
                if var in fn.__globals__:
                    candidates.setdefault(var, fn.__globals__[var])
        taken = self.params.keys() | self.reserved
        for var, obj in candidates.items():
            if obj is array and var not in taken:
                return var
        for var, obj in candidates.items():  # a view of a captured array, like w.T
            if getattr(array, "base", None) is obj and is_array(obj) and f"{var}_view" not in taken:
                return f"{var}_view"
        k = 0
        while f"_const{k}" in taken:
            k += 1
        return f"_const{k}"

    def value_of(self, x: Any) -> Value:
        if isinstance(x, TracedArray):
            x._check_live()
            if x._graph is not self.graph:
                raise TracingError(
                    "a traced array from an enclosing call was used inside a submodule call; "
                    "pass it to the submodule as an argument")
            return x._value
        if is_array(x):
            return self.captured(x)
        return self.constant(x)

    def depends_on_arguments(self, value: Value) -> bool:
        """Whether ``value`` is computed from the arguments or from arrays that may change between calls
        (parameters, module attributes), rather than from constants alone."""
        known = self._depends
        stack = [value]
        while stack:
            v = stack[-1]
            if v in known:
                stack.pop()
                continue
            node = v.producer
            if node is None or node.kind in ("prim::Param", "prim::GetAttr"):
                known[v] = True
                stack.pop()
                continue
            missing = [u for u in node.inputs if u not in known]
            if missing:
                stack += missing
                continue
            known[v] = any(known[u] for u in node.inputs)
            stack.pop()
        return known[value]

    def wrap(self, value: Value, concrete: Any, weak: bool = False) -> "TracedArray":
        self.values[value] = concrete
        return TracedArray(self, value, concrete, weak)


_CURRENT: contextvars.ContextVar[TracingState | None] = contextvars.ContextVar("gputrace_tracing", default=None)


def current_state() -> TracingState | None:
    return _CURRENT.get()


@contextlib.contextmanager
def tracing(state: TracingState) -> Iterator[TracingState]:
    token = _CURRENT.set(state)
    try:
        with _creation_traced():
            yield state
    finally:
        state.active = False
        _CURRENT.reset(token)


# NumPy's creation functions take no array, so no protocol sends them here. While a trace is recorded they
# are wrapped: called from the user's code, they give traced constants, so that the function may assign
# into the arrays it makes (Hin = np.zeros((n, b, d)); Hin[t] = ...). Other threads still get plain arrays.
CREATION_FUNCTIONS = ("zeros", "ones", "empty", "full")
CONVERSION_FUNCTIONS = ("array", "asarray")  # of traced arrays (np.array([dx, dy, dz])): a traced np.stack
_creation_lock = threading.Lock()
_creation_originals: dict[str, Callable] = {}
_creation_users = 0


@contextlib.contextmanager
def _creation_traced() -> Iterator[None]:
    global _creation_users
    with _creation_lock:
        if _creation_users == 0:
            for name in CREATION_FUNCTIONS:
                _creation_originals[name] = getattr(np, name)
                setattr(np, name, _traced_creation(_creation_originals[name]))
            for name in CONVERSION_FUNCTIONS:
                original = _creation_originals[name] = getattr(np, name)
                setattr(np, name, _traced_conversion(original))
                if original in HANDLED_FUNCTIONS:  # like= dispatches the function NumPy finds under its name
                    HANDLED_FUNCTIONS[getattr(np, name)] = HANDLED_FUNCTIONS[original]
        _creation_users += 1
    try:
        yield
    finally:
        with _creation_lock:
            _creation_users -= 1
            if _creation_users == 0:
                for name, original in _creation_originals.items():
                    HANDLED_FUNCTIONS.pop(getattr(np, name), None)
                    setattr(np, name, original)


def _traced_creation(original: Callable) -> Callable:
    @functools.wraps(original)
    def create(*args, **kwargs):
        result = original(*args, **kwargs)
        state = current_state()
        if state is None or not state.active or not isinstance(result, np.ndarray) \
                or result.dtype not in SUPPORTED_DTYPES or not _called_by_name(sys._getframe(1), original.__name__):
            return result  # an array of another dtype stays one, refused where a trace meets it
        node = state.graph.add_node("prim::Constant", [], [TensorType.of(result)], attrs={"value": result},
                                    source=user_location())
        return state.wrap(node.output, result)
    return create


def _traced_conversion(original: Callable) -> Callable:
    @functools.wraps(original)
    def convert(obj, dtype=None, *args, **kwargs):
        state = current_state()
        if state is None or not state.active or args or set(kwargs) - {"copy"} \
                or not any(isinstance(x, TracedArray) for x in _tree_leaves(obj)) \
                or not _called_by_name(sys._getframe(1), original.__name__):
            return original(obj, dtype, *args, **kwargs)  # a traced array in it becomes a constant, with a warning
        result = _stacked(obj, original)
        if dtype is not None and np.dtype(dtype) != result.dtype:
            return _astype_fn(result, dtype)
        copy = kwargs.get("copy", original.__name__ == "array")
        return _copy(result) if copy and result is obj else result
    return convert


def _stacked(obj: Any, original: Callable) -> Any:
    """``obj``, nested lists and tuples holding traced arrays, as one traced array: np.stack of its items."""
    if isinstance(obj, TracedArray):
        return obj
    if isinstance(obj, (list, tuple)):
        items = [_stacked(item, original) for item in obj]
        if any(isinstance(item, TracedArray) for item in items):
            return _stack(items)
    return original(obj)


def _called_by_name(frame: Any, name: str) -> bool:
    """Whether ``frame``, the user's code, is calling ``...name(`` right now. Compiled code calls too (NumPy's
    random module calls np.empty from C, while the nearest Python frame is the user's np.random.rand(3)):
    such a call must get a plain array, so the call expression at the frame's instruction is read."""
    filename = frame.f_code.co_filename
    if _is_library_file(filename):
        return False
    try:
        line, _, col, _ = list(frame.f_code.co_positions())[frame.f_lasti // 2]
    except (AttributeError, IndexError):  # Python 3.10 has no positions: plain arrays, as before
        return False
    if line is None or col is None:
        return False
    return re.match(rf"[\w.]*\b{name}\s*\(", linecache.getline(filename, line)[col:]) is not None


# ----------------------------------------------------------------------------- recording


def _concrete(x: Any) -> Any:
    return x._concrete if isinstance(x, TracedArray) else x


def _state_of(args: Sequence[Any]) -> TracingState:
    for a in args:
        if isinstance(a, TracedArray):
            a._check_live()
            return a._state
    state = current_state()
    if state is None:
        raise TracingError("no trace is being recorded")
    return state


def record(kind: str, inputs: Sequence[Any], attrs: dict | None = None) -> Any:
    """Run op ``kind`` on the concrete inputs and append it to the current graph.

    Returns a TracedArray, or a list of them for ops with several outputs.
    """
    attrs = dict(attrs or {})
    state = _state_of(inputs)
    selection = _common_selection(kind, inputs)
    if ops.is_elementwise(kind) and any(isinstance(x, TracedArray) and x._weak for x in inputs) and any(
            (isinstance(x, TracedArray) and not x._weak) or is_array(x) or isinstance(x, np.generic) for x in inputs):
        inputs = _strengthen_weak(kind, inputs, attrs)
    values = [state.value_of(x) for x in inputs]
    concrete = [_concrete(x) for x in inputs]
    xp = array_module(concrete)
    result = ops.run_op(kind, xp, concrete, attrs)
    types = ops.infer_types(kind, [v.type for v in values], attrs)
    for t in types:
        check_dtype(t.dtype, f"the result of np.{ops.lookup(kind).name}")
    results = list(result) if isinstance(result, (list, tuple)) else [result]
    results = [xp.asarray(r) for r in results]
    for t, r in zip(types, results):
        if t.shape != tuple(r.shape) or t.dtype != r.dtype:
            raise TracingError(f"internal error: the type rule of {kind} gives {t.dtype}{list(t.shape)} "
                               f"but NumPy gives {r.dtype}{list(r.shape)}; please report this")
    node = state.graph.add_node(kind, values, types, attrs=attrs, source=user_location())
    wrapped = [state.wrap(v, r) for v, r in zip(node.outputs, results)]
    if selection is not None:
        wrapped[0]._selection = selection
    category = ops.lookup(kind).category
    if category in (ops.VIEW, ops.SPLIT) and isinstance(inputs[0], TracedArray):
        indexing.link_views(inputs[0], kind, attrs, wrapped)
    return wrapped if category == ops.SPLIT else wrapped[0]


def _common_selection(kind: str, inputs: Sequence[Any]) -> Any:
    """The mask selection that an elementwise op of selections ``x[mask]`` of one mask keeps (None without
    one). A selection's size depends on the data: it is computed at its array's shape, and may only meet
    other selections of its mask and scalars, and be assigned back through the mask (``x[m] = x[m] ** -1.5``)."""
    selections = [x._selection for x in inputs if isinstance(x, TracedArray) and x._selection is not None]
    if not selections:
        return None
    first = selections[0]
    others = [x for x in inputs if isinstance(x, TracedArray) and x._selection is None and x.ndim > 0
              or is_array(x) and np.ndim(x) > 0]
    if ops.is_elementwise(kind) and all(s is first for s in selections) and not others:
        return first
    raise refuse_selection(first, f"np.{ops.lookup(kind).name} of it"
                           + (" and other arrays" if ops.is_elementwise(kind) else ""))


def refuse_selection(selection: Any, use: str, where: SourceLocation | None = None) -> UnsupportedOperationError:
    """The error for a use of ``x[mask]`` (a traced mask) beyond elementwise ops and assignment through it."""
    return unsupported(f"x[mask] with a traced boolean mask (taken at {selection.source}; its size depends on the "
                       f"data) used as {use}",
                       "keep the shape with np.where(mask, x, 0) (reductions: np.where(mask, x, 0).sum()), or assign "
                       "it back elementwise: x[mask] = f(x[mask])", where)


def _strengthen_weak(kind: str, inputs: Sequence[Any], attrs: dict) -> list[Any]:
    """Python float arguments (weak 0-d float64 proxies) cast to the dtype NumPy converts a Python float to
    in this op, as NEP 50 does: ``x_f32 * lr`` computes in float32, ``x_int * lr`` in float64."""
    def type_of(x: Any) -> Any:
        if isinstance(x, TracedArray):
            return ScalarType(float) if x._weak else x._value.type
        if is_array(x) or isinstance(x, np.generic):
            return TensorType.of(np.asarray(x) if isinstance(x, np.generic) else x)
        return NONE_TYPE if x is None else ScalarType(type(x))
    types = [type_of(x) for x in inputs]
    if ops.lookup(kind).name in ops.UFUNCS:
        dtypes = ops.ufunc_loop_dtypes(kind, types)[0]
    else:  # where, clip: the result's dtype
        dtypes = [ops.infer_types(kind, types, attrs)[0].dtype] * len(inputs)
    return [_astype_fn(x, dtype) if isinstance(x, TracedArray) and x._weak and x.dtype != dtype else x
            for x, dtype in zip(inputs, dtypes)]


def unsupported(what: str, hint: str = "", where: SourceLocation | None = None) -> UnsupportedOperationError:
    where = where or user_location()
    at = f" at {where.filename}:{where.line}" if where else ""
    return UnsupportedOperationError(f"{what} is not supported by gputrace{at}" + (f"; {hint}" if hint else ""))


def check_dtype(dtype: Any, what: str) -> None:
    """Raise UnsupportedOperationError, naming ``what`` and the user's line, unless gputrace computes in ``dtype``."""
    if np.dtype(dtype) not in SUPPORTED_DTYPES:
        names = ", ".join(d.name for d in SUPPORTED_DTYPES)
        raise unsupported(f"{what} of dtype {np.dtype(dtype)}", f"gputrace supports {names}")


def is_ndarray_subclass(x: Any) -> bool:
    """An ndarray subclass gputrace refuses: np.matrix and masked arrays compute other things (memmap does not)."""
    return isinstance(x, np.ndarray) and type(x) not in (np.ndarray, np.memmap)


def check_plain_array(array: Any, what: str) -> None:
    if is_ndarray_subclass(array):
        raise unsupported(f"{what} of the ndarray subclass {type(array).__name__}",
                          "expected a numpy.ndarray or cupy.ndarray: convert it with np.asarray")


# what to write instead of each conversion of a traced value into a Python or NumPy value
_FREEZE_HINTS = {
    "a NumPy array": "np.array([...]) of traced arrays: use np.stack; indexing an array that is not traced with a "
                     "traced index: pass that array as an argument (or make it a module parameter); storing into "
                     "an array that is not traced: build the result from traced arrays (np.stack, np.where)",
    "a Python bool": "data-dependent control flow is not traced: select with np.where instead of `if`",
}
_FREEZE_HINT_NUMBER = ("keep the value an array: compute with NumPy functions on traced arrays instead of Python "
                       "numbers, and build arrays from traced values with np.stack or np.where rather than storing "
                       "them into an array that is not traced")


def warn_concrete(what: str, array: "TracedArray") -> None:
    """Warn that a traced value becomes an untraced one at the user's line, and remember where: the trace
    check runs the function on other values and names these lines if the results then differ. A value
    of constants alone (np.zeros(3)[0]) is the same in every call: nothing to say."""
    state = array._state
    if not state.depends_on_arguments(array._value):
        return
    where = user_location()
    state.frozen.append((where, what))
    at = f" at {where}" if where else ""
    warnings.warn(
        f"Converting a traced array to {what}{at}: the value is recorded as a constant, so the trace "
        f"might not generalise to other inputs (data-dependent control flow is not captured)",
        TracerWarning, stacklevel=_user_stacklevel())


def _user_stacklevel() -> int:
    """The ``stacklevel`` for warnings.warn, called from the caller of this, that names the user's line."""
    frame, level = sys._getframe(2), 2
    while frame is not None and _is_library_file(frame.f_code.co_filename):
        frame, level = frame.f_back, level + 1
    return level


def freeze_hint(conversions: Sequence[str]) -> str:
    """What to write instead of converting traced values to ``conversions`` (at one line)."""
    return next((_FREEZE_HINTS[c] for c in conversions if c in _FREEZE_HINTS), _FREEZE_HINT_NUMBER)


# ----------------------------------------------------------------------------- NumPy function handlers

HANDLED_FUNCTIONS: dict[Callable, Callable] = {}


def implements(*functions: Callable):
    def register(handler):
        for fn in functions:
            HANDLED_FUNCTIONS[fn] = handler
        return handler
    return register


def _reject_kwargs(name: str, kwargs: dict, **allowed_defaults) -> None:
    for key, value in kwargs.items():
        # an array (e.g. where=mask) is never a default; comparing it would record an op
        if key in allowed_defaults and not isinstance(value, TracedArray) and not is_array(value) \
                and (value is allowed_defaults[key] or value == allowed_defaults[key]):
            continue
        raise unsupported(f"the keyword {key}= of np.{name}",
                          "gputrace traces functional code: compute a new array instead" if key == "out" else "")


@functools.lru_cache(maxsize=None)
def _parameters_after_the_array(function: Callable) -> tuple[list[str], set[str]]:
    """The positional and all parameter names of a NumPy reduction after its array (read once per function)."""
    parameters = list(inspect.signature(function).parameters.values())[1:]
    return [p.name for p in parameters if p.kind == p.POSITIONAL_OR_KEYWORD], {p.name for p in parameters}


def _bind_reduction(row: ops.Reduction, args: tuple, kwargs: dict) -> dict:
    """The arguments of ``np.<name>(x, *args, **kwargs)`` after the array, by name: bound as NumPy's function
    binds them (``np.var(x, 0, None, None, 1)`` has ddof=1), with NumPy's messages."""
    positional, names = _parameters_after_the_array(row.numpy)
    if len(args) > len(positional):
        raise TypeError(f"{row.name}() takes from 1 to {len(positional) + 1} positional arguments "
                        f"but {len(args) + 1} were given")
    for key, value in zip(positional, args):
        if key in kwargs:
            raise TypeError(f"{row.name}() got multiple values for argument '{key}'")
        kwargs[key] = value
    for key in kwargs:
        if key not in names:
            raise TypeError(f"{row.name}() got an unexpected keyword argument '{key}'")
    return kwargs


def _reduction(name: str):
    row = ops.REDUCTION_ROWS[name]

    def handler(x, *args, **kwargs):
        """np.<name>(x, ...) and x.<name>(...), their arguments bound as NumPy binds them."""
        kwargs = _bind_reduction(row, args, kwargs)
        axis, dtype, keepdims = kwargs.pop("axis", None), kwargs.pop("dtype", None), kwargs.pop("keepdims", False)
        keepdims = False if keepdims is np._NoValue else keepdims
        ddof, initial = _ddof(kwargs), kwargs.pop("initial", np._NoValue)
        _reject_kwargs(name, kwargs, out=None, where=True)
        if isinstance(x, TracedArray) and x._selection is not None:  # x[mask].sum(0), x[mask].mean()
            return indexing.reduce_selection(name, x, axis, dtype, bool(keepdims), initial)
        attrs = {"axis": ops.normalize_axes(axis, np.ndim(_concrete(x)), name), "keepdims": bool(keepdims)}
        if row.index and attrs["axis"] is not None and len(attrs["axis"]) != 1:
            raise TypeError(f"{name}: axis must be an integer")
        if dtype is not None:
            attrs["dtype"] = np.dtype(dtype)
        if ddof:
            attrs["ddof"] = ddof
        if initial is np._NoValue:
            return record(f"np::{name}", [x], attrs)
        initial = _initial(name, initial)
        if row.empty_error is not None:  # max and min have no identity: their kernels start at initial
            return record(f"np::{name}", [x], {**attrs, "initial": initial})
        # sum and prod: initial joins the result once, converted to its dtype as NumPy converts it (NumPy adds
        # it first: a float sum may differ in its last bit)
        start = row.numpy(np.empty(0, _concrete(x).dtype), dtype=attrs.get("dtype"), initial=initial)
        return getattr(np, row.ufunc)(record(f"np::{name}", [x], attrs), start)
    return handler


def _ddof(kwargs: dict) -> Any:
    """var/std's ``ddof``, or its Array API name ``correction`` (not both, as NumPy)."""
    ddof, correction = kwargs.pop("ddof", 0), kwargs.pop("correction", np._NoValue)
    if correction is np._NoValue:
        return ddof
    if ddof != 0:
        raise ValueError("ddof and correction can't be provided simultaneously.")
    return correction


def _initial(name: str, initial: Any) -> Any:
    """A reduction's ``initial``: a real number (max/min kernels start their accumulators at it)."""
    if not isinstance(initial, (bool, int, float, np.bool_, np.integer, np.floating)):
        kind = "ndarray" if isinstance(initial, TracedArray) else type(initial).__name__  # np.ones(1) is traced
        raise unsupported(f"np.{name}(..., initial={kind})", "give a real number")
    if initial != initial:
        raise unsupported(f"np.{name}(..., initial=nan)", "the result would be NaN everywhere")
    return initial


for _name, _row in ops.REDUCTION_ROWS.items():
    implements(_row.numpy, *{"max": (np.amax,), "min": (np.amin,)}.get(_name, ()))(_reduction(_name))


def _method(handler: Callable) -> Callable:
    """``handler``, the NumPy function's, as the ndarray method of the same name."""
    def method(self, *args, **kwargs):
        return handler(self, *args, **kwargs)
    return method


def _scan_handler(fn: Callable) -> Callable:
    name = fn.__name__

    def handler(a, axis=None, dtype=None, out=None):
        _reject_kwargs(name, {"out": out}, out=None)
        # a 0-d array scans as a 1-d one
        ndim = max(np.ndim(_concrete(a)), 1)
        attrs = {"axis": None if axis is None else ops.normalize_axes(operator.index(axis), ndim, name)[0],
                 # NumPy's dtype, spelled out for every array library (a bool cumsum is int64)
                 "dtype": np.dtype(dtype) if dtype is not None else fn(np.zeros(1, _concrete(a).dtype)).dtype}
        return record(f"np::{name}", [a], attrs)
    return handler


_cumsum = HANDLED_FUNCTIONS[np.cumsum] = _scan_handler(np.cumsum)
_cumprod = HANDLED_FUNCTIONS[np.cumprod] = _scan_handler(np.cumprod)
_ACCUMULATE_UFUNCS = {"add": _cumsum, "multiply": _cumprod}


def _accumulate(ufunc: np.ufunc, a: Any, axis: Any = 0, dtype: Any = None, out: Any = None) -> Any:
    """np.add.accumulate and np.multiply.accumulate: cumsum and cumprod in the dtype the ufunc would give."""
    if np.ndim(_concrete(a)) == 0:
        raise TypeError("cannot accumulate on a scalar")
    if axis is None or isinstance(axis, tuple):
        raise ValueError("accumulate does not allow multiple axes")
    result = ufunc.accumulate(np.zeros(1, _concrete(a).dtype), dtype=dtype).dtype
    return _ACCUMULATE_UFUNCS[ufunc.__name__](a, axis, result, out)


def _sort_handler(name: str) -> Callable:
    def handler(a, axis=-1, kind=None, order=None, *, stable=None):
        """np.sort / np.argsort, run by the array library between kernels (CuPy's sorts are stable)."""
        concrete = _concrete(a)  # NumPy's argument checks (kind, order, stable, axis) on a tiny array
        getattr(np, name)(np.zeros((1,) * np.ndim(concrete), concrete.dtype), axis, kind, order, stable=stable)
        attrs = {"axis": None if axis is None else operator.index(axis), "kind": "stable" if stable else kind}
        return record(f"np::{name}", [a], attrs)
    return handler


_sort = HANDLED_FUNCTIONS[np.sort] = _sort_handler("sort")
_argsort = HANDLED_FUNCTIONS[np.argsort] = _sort_handler("argsort")


@implements(np.where)
def _where(condition, *args):
    if len(args) != 2:
        raise unsupported("np.where with one argument (its output shape depends on the data)",
                          "use np.where(condition, x, y)")
    return record("np::where", [condition, *args])


@implements(np.clip)
def _clip(a, a_min=np._NoValue, a_max=np._NoValue, out=None, *, min=np._NoValue, max=np._NoValue, **kwargs):
    _reject_kwargs("clip", {"out": out, **kwargs}, out=None)
    lo = a_min if a_min is not np._NoValue else (None if min is np._NoValue else min)
    hi = a_max if a_max is not np._NoValue else (None if max is np._NoValue else max)
    if lo is None and hi is None:
        raise ValueError("One of max or min must be given")
    if isinstance(a, (bool, int, float)):  # NumPy clips np.asarray(a): a Python scalar here is not weak
        a = np.asarray(a)
    dtype = getattr(_concrete(a), "dtype", None)
    if dtype is not None and dtype.kind in "iu":  # as NumPy's _clip: a Python int bound beyond the dtype is no bound
        info = np.iinfo(dtype)
        lo = None if type(lo) is int and lo <= info.min else lo
        hi = None if type(hi) is int and hi >= info.max else hi
        if lo is None and hi is None:
            return record("np::positive", [a])
    if lo is None:
        return record("np::minimum", [a, hi])
    if hi is None:
        return record("np::maximum", [a, lo])
    return record("np::clip", [a, lo, hi])


@implements(np.matmul)
def _matmul(a, b, /, out=None, **kwargs):
    _reject_kwargs("matmul", {"out": out, **kwargs}, out=None)
    return record("np::matmul", [a, b])


@implements(np.dot)
def _dot(a, b, out=None):
    _reject_kwargs("dot", {"out": out}, out=None)
    # np.dot makes Python scalars arrays (strongly typed), unlike ufuncs: record them as NumPy scalars
    a, b = (np.asarray(v)[()] if isinstance(v, (bool, int, float)) else v for v in (a, b))
    return record("np::dot", [a, b])


@implements(np.transpose, np.permute_dims)
def _transpose(a, axes=None):
    ndim = np.ndim(_concrete(a))
    axes = tuple(reversed(range(ndim))) if axes is None else tuple(operator.index(i) % max(ndim, 1) for i in axes)
    if sorted(axes) != list(range(ndim)):
        raise ValueError("axes don't match array")
    return record("np::transpose", [a], {"axes": axes})


@implements(np.swapaxes)
def _swapaxes(a, axis1, axis2):
    ndim = np.ndim(_concrete(a))
    ops.normalize_axes((axis1,), ndim, "swapaxes")
    ops.normalize_axes((axis2,), ndim, "swapaxes")
    return record("np::swapaxes", [a], {"axis1": int(axis1), "axis2": int(axis2)})


@implements(np.diagonal)
def _diagonal(a, offset=0, axis1=0, axis2=1):
    ndim = np.ndim(_concrete(a))
    if ndim < 2:
        raise ValueError("diag requires an array of at least two dimensions")
    (axis1,), (axis2,) = (ops.normalize_axes(operator.index(axis), ndim, name)
                          for axis, name in ((axis1, "axis1"), (axis2, "axis2")))
    if axis1 == axis2:
        raise ValueError("axis1 and axis2 cannot be the same")
    return record("np::diagonal", [a], {"offset": operator.index(offset), "axis1": axis1, "axis2": axis2})


@implements(np.moveaxis)
def _moveaxis(a, source, destination):
    ndim = np.ndim(_concrete(a))
    source = _as_tuple(source, ndim)
    destination = _as_tuple(destination, ndim)
    if len(source) != len(destination):
        raise ValueError("`source` and `destination` arguments must have the same number of elements")
    perm = [n for n in range(ndim) if n not in source]
    for dest, src in sorted(zip(destination, source)):
        perm.insert(dest, src)
    return record("np::transpose", [a], {"axes": tuple(perm)})


def _as_tuple(axis, ndim):
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    for i in axes:
        if not -ndim <= operator.index(i) < ndim:
            raise np.exceptions.AxisError(i, ndim)
    return tuple(operator.index(i) % ndim for i in axes)


def _shape_arg(shape) -> tuple[int, ...]:
    if isinstance(shape, (int, np.integer)):
        return (int(shape),)
    return tuple(operator.index(s) for s in shape)


def _check_order(call: str, order: Any, allowed: str = "C") -> None:
    """Refuse a memory ``order`` other than those ``allowed``: traced results are always C-contiguous."""
    if not (isinstance(order, str) and order in allowed):
        raise unsupported(f"{call}(order={order!r})",
                          f"only order={' or '.join(repr(o) for o in allowed)} is traced: "
                          f"traced results are always C-contiguous")


@implements(np.reshape)
def _reshape(a, shape=None, order="C", *, newshape=None, copy=None):
    _check_order("reshape", order)
    shape = newshape if shape is None else shape
    return record("np::reshape", [a], {"shape": _shape_arg(shape)})


@implements(np.ravel)
def _ravel(a, order="C"):
    _check_order("ravel", order)
    return record("np::ravel", [a])


@implements(np.broadcast_to)
def _broadcast_to(array, shape, subok=False):
    return record("np::broadcast_to", [array], {"shape": _shape_arg(shape)})


@implements(np.expand_dims)
def _expand_dims(a, axis):
    axis = (int(axis),) if isinstance(axis, (int, np.integer)) else tuple(int(i) for i in axis)
    out_ndim = np.ndim(_concrete(a)) + len(axis)
    return record("np::expand_dims", [a], {"axis": ops.normalize_axes(axis, out_ndim, "expand_dims")})


@implements(np.squeeze)
def _squeeze(a, axis=None):
    return record("np::squeeze", [a], {"axis": ops.normalize_axes(axis, np.ndim(_concrete(a)), "squeeze")})


def _cast_for_join(join: Callable, arrays: list, dtype: Any, casting: str) -> list:
    """``arrays`` cast to ``dtype`` as np.concatenate and np.stack cast them, after NumPy's casting check."""
    if dtype is None and casting == "same_kind":
        return arrays
    # empty stand-ins of each array's dtype and ndim: NumPy's errors, not its work
    join([np.empty((0,) * np.ndim(_concrete(a)), np.asarray(_concrete(a)).dtype) for a in arrays],
         dtype=dtype, casting=casting)
    if dtype is None:
        return arrays
    return [record("np::astype", [a if isinstance(a, TracedArray) else np.asarray(a)], {"dtype": np.dtype(dtype)})
            for a in arrays]


@implements(np.concatenate)
def _concatenate(arrays, axis=0, out=None, *, dtype=None, casting="same_kind"):
    _reject_kwargs("concatenate", {"out": out}, out=None)
    arrays = list(arrays)
    if axis is None:
        arrays = [_ravel(a) if isinstance(a, TracedArray) else np.ravel(a) for a in arrays]
        axis = 0
    return record("np::concatenate", _cast_for_join(np.concatenate, arrays, dtype, casting), {"axis": int(axis)})


@implements(np.stack)
def _stack(arrays, axis=0, out=None, *, dtype=None, casting="same_kind"):
    _reject_kwargs("stack", {"out": out}, out=None)
    return record("np::stack", _cast_for_join(np.stack, list(arrays), dtype, casting), {"axis": int(axis)})


@implements(np.split)
def _split(ary, indices_or_sections, axis=0):
    ios = indices_or_sections
    ios = int(ios) if isinstance(ios, (int, np.integer)) else tuple(int(i) for i in ios)
    return record("np::split", [ary], {"indices_or_sections": ios, "axis": int(axis)})


def _fill_like(name: str):
    def handler(a, dtype=None, order="K", subok=True, shape=None, *, device=None):
        _check_order(f"np.{name}", order, "KAC")
        if shape is not None:
            raise unsupported(f"np.{name}(..., shape=...)")
        return record(f"np::{name}", [a], {"dtype": None if dtype is None else np.dtype(dtype)})
    return handler


HANDLED_FUNCTIONS[np.zeros_like] = _fill_like("zeros_like")
HANDLED_FUNCTIONS[np.ones_like] = _fill_like("ones_like")


@implements(np.full_like)
def _full_like(a, fill_value, dtype=None, order="K", subok=True, shape=None, *, device=None):
    if shape is not None:
        raise unsupported("np.full_like(..., shape=...)")
    _check_order("np.full_like", order, "KAC")
    if isinstance(fill_value, TracedArray) or is_array(fill_value):
        raise unsupported("np.full_like with an array fill_value", "use np.broadcast_to")
    concrete_dtype = np.dtype(dtype) if dtype is not None else _concrete(a).dtype
    return record("np::full_like", [a], {"fill_value": fill_value, "dtype": concrete_dtype})


@implements(np.empty_like)
def _empty_like(a, dtype=None, order="K", subok=True, shape=None, *, device=None):
    # an empty array's contents are undefined: zeros are as good as any
    return _fill_like("zeros_like")(a, dtype, order, subok, shape)


@implements(np.copy)
def _copy(a, order="K", subok=False):
    _check_order("copy", order, "KAC")
    return record("np::copy", [a])


@implements(np.astype)
def _astype_fn(x, dtype, /, *, copy=True, device=None):
    return record("np::astype", [x], {"dtype": np.dtype(dtype)})


@implements(np.round, np.around)
def _round(a, decimals=0, out=None):
    _reject_kwargs("round", {"out": out}, out=None)
    if decimals != 0:
        raise unsupported(f"np.round(..., decimals={decimals})", "only decimals=0 is traced")
    if np.issubdtype(_concrete(a).dtype, np.integer):
        return _copy(a)  # np.round of bool goes through rint's float16 loop, as recorded below
    return record("np::rint", [a])


@implements(np.shape)
def _np_shape(a):
    return a.shape


@implements(np.ndim)
def _np_ndim(a):
    return a.ndim


@implements(np.size)
def _np_size(a, axis=None):
    return a.size if axis is None else a.shape[axis]


@implements(np.result_type)
def _result_type(*arrays_and_dtypes):
    return np.result_type(*[_concrete(a) for a in arrays_and_dtypes])


@implements(np.asarray, np.asanyarray, np.ascontiguousarray)
def _asarray(a, dtype=None, *args, **kwargs):
    if dtype is not None and np.dtype(dtype) != a.dtype:
        return record("np::astype", [a], {"dtype": np.dtype(dtype)})
    return a


# ----------------------------------------------------------------------------- the proxy array

_UFUNC_KWARGS_ALLOWED = {"out": None, "where": True, "casting": "same_kind", "order": "K", "dtype": None,
                         "subok": True, "signature": None}
_UFUNC_KWARG_HINTS = {"out": "gputrace traces functional code: compute a new array instead",
                      "where": "select with np.where(condition, result, other) instead",
                      "dtype": "convert with .astype(dtype) before or after the call instead",
                      "order": "traced results are always C-contiguous"}

_REDUCE_UFUNCS = {row.ufunc: name for name, row in ops.REDUCTION_ROWS.items() if row.ufunc}  # np.add.reduce: sum


_DATA_DEPENDENT = ("its result's size depends on the values, which a trace cannot record: keep a fixed size, "
                   "e.g. a mask with np.where(condition, x, fill)")
_GATHER = "index with integer arrays instead (x[idx], np.take, np.take_along_axis are traced), or np.where"
_IN_PLACE = "assign with x[index] = values or x[mask] = value, which are traced"
# what to write instead of a NumPy function that is not traced, by its name as unsupported() reports it
UNSUPPORTED_HINTS = {
    **dict.fromkeys(["np.unique", "np.nonzero", "np.argwhere", "np.flatnonzero", "np.extract", "np.compress",
                     "np.trim_zeros", "np.bincount"], _DATA_DEPENDENT),
    "np.choose": _GATHER,
    "np.select": "write it as nested np.where(condition, choice, otherwise)",
    **dict.fromkeys(["np.put", "np.put_along_axis", "np.place", "np.putmask", "np.copyto", "np.fill_diagonal"],
                    _IN_PLACE),
    "np.allclose": "it returns a Python bool: np.all(np.isclose(a, b)) keeps the answer a traced array",
    "np.array_equal": "it returns a Python bool: np.all(a == b) keeps the answer a traced array",
    "np.count_nonzero": "write np.sum(x != 0, axis)",
    "np.average": "write np.mean(x, axis), or np.sum(x * w, axis) / np.sum(w, axis)",
    "np.delete": "select the parts to keep with slices and join them with np.concatenate",
    "np.insert": "join slices and the new values with np.concatenate",
    **dict.fromkeys(["np.median", "np.percentile", "np.quantile", "np.partition", "np.argpartition"],
                    "np.sort(x, axis) is traced: take the elements you need from the sorted array by slicing"),
}
_UNSUPPORTED_MODULE_HINTS = {
    "np.linalg": "solvers and decompositions are not traced (np.linalg.norm is): compute them with NumPy outside "
                 "the traced function and pass the result in",
    "np.fft": "FFTs are not traced: compute them with NumPy outside the traced function and pass the result in",
}


def unsupported_function_hint(name: str) -> str:
    """What to write instead of the untraced NumPy function ``name`` ('np.unique', 'np.linalg.inv'), or ''."""
    return UNSUPPORTED_HINTS.get(name) or _UNSUPPORTED_MODULE_HINTS.get(name.rpartition(".")[0], "")


class TracedArray:
    """A stand-in for an array while tracing: the concrete array plus its graph value."""

    __array_priority__ = 1000
    # a view's link to the array it views (NumPy's ``base``), so that assignments reach both (indexing.py)
    _base: Any = None         # the viewed proxy
    _recipe: Any = None       # (kind, attrs): how this view is taken from its base
    _views: Any = None        # WeakValueDictionary of the views taken of this proxy
    _readonly = False         # a broadcast or diagonal view, as NumPy's are
    _call_argument = False    # an argument of a submodule call (its updates cannot reach the caller)
    _selection: Any = None    # x[mask] of a traced mask, kept at x's shape (a Selection, see indexing.py)

    def __init__(self, state: TracingState, value: Value, concrete: Any, weak: bool = False):
        self._state = state
        self._value = value
        self._graph = state.graph
        self._concrete = concrete
        self._weak = weak  # a Python float argument (0-d float64), weakly typed as NEP 50 types Python floats

    def _check_live(self) -> None:
        if not self._state.active:
            raise TracingError(f"a traced array (%{self._value.name}) was used after its trace ended; "
                               "traced arrays must not escape the traced function")

    # -- NumPy protocols
    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        if method not in ("__call__", "reduce", "accumulate") and not _depends_on_arguments((inputs, kwargs)):
            return getattr(ufunc, method)(*_concrete_tree(inputs), **_concrete_tree(kwargs))
        name = ops.UFUNC_ALIASES.get(ufunc.__name__, ufunc.__name__)
        if method == "reduce" and name in _REDUCE_UFUNCS:
            axis = kwargs.pop("axis", 0)
            return _reduction(_REDUCE_UFUNCS[name])(inputs[0], axis=axis, **kwargs)
        if method == "accumulate" and name in _ACCUMULATE_UFUNCS:
            return _accumulate(ufunc, inputs[0], **kwargs)
        if method == "at":
            return indexing.ufunc_at(ufunc, *inputs, **kwargs)
        if method != "__call__":
            raise unsupported(f"np.{ufunc.__name__}.{method}")
        if ufunc is np.matmul:
            return _matmul(*inputs, **kwargs)
        for key, value in kwargs.items():
            default = _UFUNC_KWARGS_ALLOWED.get(key, np._NoValue)
            if value is default or (key == "out" and isinstance(value, tuple) and all(o is None for o in value)):
                continue
            raise unsupported(f"np.{ufunc.__name__}(..., {key}=...)", _UFUNC_KWARG_HINTS.get(key, ""))
        kind = f"np::{name}"
        if kind not in ops.OPS or ufunc.nout != 1:
            raise unsupported(f"the NumPy function np.{ufunc.__name__}")
        if ufunc is np.fabs:  # fabs has float loops only: integers and bools are cast, then it is absolute
            loop = np.fabs.resolve_dtypes((_concrete(inputs[0]).dtype, None))[1]
            inputs = (inputs[0] if loop == _concrete(inputs[0]).dtype else _astype_fn(inputs[0], loop),)
        return record(kind, list(inputs))

    def __array_function__(self, func, types, args, kwargs):
        handler = HANDLED_FUNCTIONS.get(func)
        if handler is None and not _depends_on_arguments((args, kwargs)):
            return func(*_concrete_tree(args), **_concrete_tree(kwargs))  # constants in, a constant out
        if handler is None:
            module = getattr(func, "__module__", None) or "numpy"  # np.fft.fft, np.linalg.norm by their full name
            public = module.startswith("numpy") and not any(p.startswith("_") for p in module.split("."))
            name = f"{'np' + module[5:] if public else 'np'}.{func.__name__}"
            raise unsupported(f"the NumPy function {name}", unsupported_function_hint(name))
        return handler(*args, **kwargs)

    def __array__(self, dtype=None, copy=None):
        if self._selection is not None:
            raise refuse_selection(self._selection, "a NumPy array")
        warn_concrete("a NumPy array", self)
        value = self._concrete
        value = value.get() if not isinstance(value, np.ndarray) else value
        return value if dtype is None else value.astype(dtype)

    # -- attributes
    @property
    def shape(self) -> tuple[int, ...]:
        if self._selection is not None:
            raise refuse_selection(self._selection, "an array with a shape")
        self._state.reads_shape = True
        return tuple(self._concrete.shape)

    @property
    def dtype(self) -> np.dtype:
        return self._concrete.dtype

    @property
    def ndim(self) -> int:
        return self._concrete.ndim

    @property
    def size(self) -> int:
        if self._selection is not None:
            raise refuse_selection(self._selection, "an array with a size")
        self._state.reads_shape = True
        return int(self._concrete.size)

    @property
    def itemsize(self) -> int:
        return self._concrete.dtype.itemsize

    @property
    def nbytes(self) -> int:
        return self.size * self.itemsize

    @property
    def T(self) -> "TracedArray":
        return record("np::T", [self])

    @property
    def mT(self) -> "TracedArray":
        return _swapaxes(self, -1, -2)

    @property
    def device(self):
        return getattr(self._concrete, "device", "cpu")

    # -- methods
    def reshape(self, *shape, order="C"):
        shape = shape[0] if len(shape) == 1 and not isinstance(shape[0], (int, np.integer)) else shape
        return _reshape(self, shape, order=order)

    def transpose(self, *axes):
        axes = axes[0] if len(axes) == 1 and (axes[0] is None or not isinstance(axes[0], (int, np.integer))) else axes
        return _transpose(self, axes if axes else None)

    def swapaxes(self, axis1, axis2):
        return _swapaxes(self, axis1, axis2)

    def ravel(self, order="C"):
        return _ravel(self, order)

    def flatten(self, order="C"):
        return _ravel(self, order)

    def squeeze(self, axis=None):
        return _squeeze(self, axis)

    def astype(self, dtype, order="K", casting="unsafe", subok=True, copy=True):
        _check_order("astype", order, "KAC")
        if np.dtype(dtype) == self.dtype and not copy:
            return self
        return record("np::astype", [self], {"dtype": np.dtype(dtype)})

    def copy(self, order="C"):
        return _copy(self, order)

    # x.sum(...) binds its arguments as np.sum(x, ...) does, and so on
    sum, prod, mean, var, std = (_method(_reduction(name)) for name in ("sum", "prod", "mean", "var", "std"))
    max, min, any, all = (_method(_reduction(name)) for name in ("max", "min", "any", "all"))
    argmax, argmin = _method(_reduction("argmax")), _method(_reduction("argmin"))
    cumsum, cumprod = _method(_cumsum), _method(_cumprod)
    diagonal = _method(_diagonal)

    def argsort(self, axis=-1, kind=None, order=None, *, stable=None):
        return _argsort(self, axis, kind, order, stable=stable)

    def sort(self, axis=-1, kind=None, order=None, *, stable=None):
        """``x.sort()`` sorts ``x`` in place: an assignment, as ``x += 1`` is (an input is written back)."""
        if self._readonly:
            raise ValueError("output array is read-only")
        indexing.assign(self, _sort(self, axis, kind, order, stable=stable), "`x.sort()`")

    def repeat(self, repeats, axis=None):
        return HANDLED_FUNCTIONS[np.repeat](self, repeats, axis)

    def take(self, indices, axis=None, out=None, mode="raise"):
        return HANDLED_FUNCTIONS[np.take](self, indices, axis, out, mode)

    def clip(self, min=None, max=None, out=None, **kw):
        return _clip(self, min, max, out, **kw)

    def dot(self, b, out=None):
        return _dot(self, b, out)

    def round(self, decimals=0, out=None):
        return _round(self, decimals, out)

    # -- indexing (gputrace/indexing.py)
    def __getitem__(self, index):
        return indexing.getitem(self, index)

    def __setitem__(self, index, value):
        indexing.setitem(self, index, value)

    # -- conversions to Python values: recorded as constants, with a warning
    def __bool__(self):
        warn_concrete("a Python bool", self)
        return bool(self._concrete)

    def __int__(self):
        warn_concrete("a Python int", self)
        return int(self._concrete)

    def __float__(self):
        warn_concrete("a Python float", self)
        return float(self._concrete)

    def __index__(self):
        warn_concrete("a Python index", self)
        return operator.index(self._concrete)

    def __len__(self):
        if self.ndim == 0:
            raise TypeError("len() of unsized object")
        return self.shape[0]  # reads the shape: the trace is redone for other shapes

    def __iter__(self):
        # rows, as NumPy iterates (x, y, z = state): the loop is unrolled to the length, which reads the shape
        if self.ndim == 0:
            raise TypeError("iteration over a 0-d array")
        return (self[i] for i in range(len(self)))

    def item(self, *args):
        warn_concrete("a Python scalar (.item())", self)
        return self._concrete.item(*args)

    def tolist(self):
        warn_concrete("a Python list (.tolist())", self)
        return self._concrete.tolist()

    def __repr__(self) -> str:
        return f"TracedArray(%{self._value.name} : {self._value.type})"

    __hash__ = object.__hash__


def _tree_leaves(tree: Any) -> Iterator[Any]:
    if isinstance(tree, (tuple, list)):
        for item in tree:
            yield from _tree_leaves(item)
    elif isinstance(tree, dict):
        for item in tree.values():
            yield from _tree_leaves(item)
    else:
        yield tree


def _depends_on_arguments(tree: Any) -> bool:
    """Whether a traced array in ``tree`` is computed from the arguments (else all are constants: np.zeros)."""
    return any(x._state.depends_on_arguments(x._value) for x in _tree_leaves(tree) if isinstance(x, TracedArray))


def _concrete_tree(tree: Any) -> Any:
    """``tree`` with each traced array replaced by its concrete value."""
    if isinstance(tree, (tuple, list)):
        return type(tree)(_concrete_tree(item) for item in tree)
    if isinstance(tree, dict):
        return {key: _concrete_tree(item) for key, item in tree.items()}
    return _concrete(tree)


def _binary(ufunc, reflected=False):
    def method(self, other):
        return _stays_weak(ufunc(other, self) if reflected else ufunc(self, other), self, other)
    return method


def _stays_weak(result: Any, *operands: Any) -> Any:
    """Python float arithmetic gives a Python float: the result of an operator on Python float arguments
    and Python numbers is weak too (``x_f32 * (lr * 0.5)`` is float32)."""
    if isinstance(result, TracedArray) and result.dtype.kind == "f" and all(
            (isinstance(v, TracedArray) and v._weak) or type(v) in (bool, int, float) for v in operands):
        result._weak = True
    return result


def _inplace(ufunc, symbol, compute=None):
    def method(self, other):
        if self._readonly:  # checked first, as NumPy does
            raise ValueError("output array is read-only")
        result = (compute or ufunc)(self, other)
        if not isinstance(result, TracedArray):
            return result
        # NumPy writes into the left operand: its shape and dtype stay (same_kind casting)
        shape, dtype = self._concrete.shape, self._concrete.dtype
        if result._concrete.shape != shape:
            raise ValueError(f"non-broadcastable output operand with shape {shape} doesn't match the broadcast "
                             f"shape {result._concrete.shape}")
        if result._concrete.dtype != dtype:
            if not np.can_cast(result._concrete.dtype, dtype, "same_kind"):
                raise TypeError(f"Cannot cast ufunc '{ufunc.__name__}' output from {result._concrete.dtype!r} to "
                                f"{dtype!r} with casting rule 'same_kind'")
            result = _astype_fn(result, dtype)
        # update this proxy itself, as NumPy updates the array: every name bound to it, the array it is a view
        # of and the other views of that array see the new value
        indexing.assign(self, result, f"in-place `{symbol}=`")
        return self
    return method


for _op, _ufunc in {"add": np.add, "sub": np.subtract, "mul": np.multiply, "truediv": np.divide,
                    "floordiv": np.floor_divide, "mod": np.remainder, "pow": np.power, "matmul": np.matmul,
                    "and": np.bitwise_and, "or": np.bitwise_or, "xor": np.bitwise_xor,
                    "lshift": np.left_shift, "rshift": np.right_shift}.items():
    setattr(TracedArray, f"__{_op}__", _binary(_ufunc))
    setattr(TracedArray, f"__r{_op}__", _binary(_ufunc, reflected=True))
    setattr(TracedArray, f"__i{_op}__", _inplace(_ufunc, {"add": "+", "sub": "-", "mul": "*", "truediv": "/",
                                                          "floordiv": "//", "mod": "%", "pow": "**", "matmul": "@",
                                                          "and": "&", "or": "|", "xor": "^", "lshift": "<<",
                                                          "rshift": ">>"}[_op]))
for _op, _ufunc in {"lt": np.less, "le": np.less_equal, "gt": np.greater, "ge": np.greater_equal,
                    "eq": np.equal, "ne": np.not_equal}.items():
    setattr(TracedArray, f"__{_op}__", _binary(_ufunc))


def _pow(self, other):
    """``x ** other`` as ndarray computes it: exponents 2, -1 and 0.5 take NumPy's fast paths.

    They differ from np.power in dtype (bool ** 2 is int8) or in value (float16 ** 0.5 of -inf is nan).
    """
    if type(other) is int and other == 2:
        return np.square(self)
    if self.dtype.kind == "f" and type(other) is int and other == -1:
        return np.reciprocal(self)
    if self.dtype.kind == "f" and type(other) is float and other == 0.5:
        return np.sqrt(self)
    return np.power(self, other)


TracedArray.__pow__ = lambda self, other: _stays_weak(_pow(self, other), self, other)
TracedArray.__ipow__ = _inplace(np.power, "**", compute=_pow)
TracedArray.__rdivmod__ = lambda self, other: (np.floor_divide(other, self), np.remainder(other, self))
TracedArray.__neg__ = lambda self: _stays_weak(np.negative(self), self)
TracedArray.__pos__ = lambda self: _stays_weak(np.positive(self), self)
TracedArray.__abs__ = lambda self: _stays_weak(np.absolute(self), self)
TracedArray.__invert__ = lambda self: np.invert(self)
TracedArray.__divmod__ = lambda self, other: (np.floor_divide(self, other), np.remainder(self, other))


# ----------------------------------------------------------------------------- functions and module calls


def parameter_names(fn: Callable, count: int) -> list[str]:
    """Names of ``fn``'s first ``count`` positional parameters (``input0``... where unknown)."""
    names: list[str] = []
    try:
        for p in inspect.signature(fn).parameters.values():
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
                names.append(p.name)
            elif p.kind == p.VAR_POSITIONAL:
                names += [f"{p.name}{i}" for i in range(count - len(names))]
    except (TypeError, ValueError):
        pass
    names += [f"input{i}" for i in range(len(names), count)]
    return names[:count]


def module_type_name(module: Any) -> str:
    return f"__gputrace__.{type(module).__qualname__}"


def flatten_outputs(state: TracingState, out: Any, strict: bool, where: str = "output") -> tuple[Any, list[Value]]:
    """The output tree (ints at the leaves, JSON-friendly) and the graph values at its leaves."""
    leaves: list[Value] = []

    def visit(x: Any, path: str):
        if isinstance(x, TracedArray) and x._selection is not None:
            raise refuse_selection(x._selection, f"the function's {path}", x._selection.source)
        if isinstance(x, TracedArray) or is_array(x) or isinstance(x, np.generic):
            leaves.append(state.value_of(x if not isinstance(x, np.generic) else np.asarray(x)))
            return len(leaves) - 1
        if isinstance(x, tuple):
            return {"tuple": [visit(v, f"{path}[{i}]") for i, v in enumerate(x)]}
        if isinstance(x, (list, dict)):
            if strict:
                kind = type(x).__name__
                raise TracingError(
                    f"{path} is a {kind}: under strict=True only arrays and tuples of arrays may be returned "
                    f"(a {kind} could change length between calls); return a tuple, or trace with strict=False")
            if isinstance(x, list):
                return {"list": [visit(v, f"{path}[{i}]") for i, v in enumerate(x)]}
            if not all(isinstance(k, str) for k in x):
                raise TracingError(f"{path} is a dict with non-string keys; only string keys can be traced")
            return {"dict": {k: visit(v, f"{path}[{k!r}]") for k, v in x.items()}}
        raise TracingError(f"{path} is a {type(x).__name__} ({x!r}); a traced function must return arrays "
                           "(or tuples of arrays)")

    return visit(out, where), leaves


def unflatten_outputs(tree: Any, leaves: Sequence[Any]) -> Any:
    if isinstance(tree, int):
        return leaves[tree]
    if "tuple" in tree:
        return tuple(unflatten_outputs(t, leaves) for t in tree["tuple"])
    if "list" in tree:
        return [unflatten_outputs(t, leaves) for t in tree["list"]]
    return {k: unflatten_outputs(t, leaves) for k, t in tree["dict"].items()}


def trace_graph(fn: Callable, call: Any, *, module: Any = None, method: str = "forward",
                strict: bool = True) -> TracingState:
    """Run ``fn`` on proxies of ``call``'s arrays (an :class:`arguments.Call`) and record its graph; the state
    holds graph, params and values."""
    state = TracingState(fn, reserved=[name for name, _ in module.named_arrays()] if module is not None else ())
    graph = Graph(getattr(fn, "__name__", method) if module is None else method)
    frame = Frame(graph, module)
    if module is not None:
        frame.self_value = graph.add_input(ObjectType(module_type_name(module)), "self")
    state.frames.append(frame)
    proxies = [state.wrap(graph.add_input(TensorType.of(x), name), x, weak)
               for x, name, weak in zip(call.leaves, call.names, call.weak)]
    originals = [p._value for p in proxies]  # the proxies live on: updates through views reach them
    args, kwargs = call.rebuild(proxies)
    with tracing(state):
        out = fn(*args, **kwargs)
        tree, leaves = flatten_outputs(state, out, strict)
    # inputs updated in place (W -= lr * dW): their last values are extra outputs, written back after a call
    updated = [i for i, (p, v) in enumerate(zip(proxies, originals)) if p._value is not v]
    graph.outputs = leaves + [proxies[i]._value for i in updated]
    if updated:
        graph.meta["updated_inputs"] = updated
    graph.meta["output_tree"] = tree
    graph.meta["reads_shape"] = state.reads_shape
    return state


def module_value(frame: Frame, module: Any) -> Value | None:
    """The value of ``module`` in ``frame``: self, or a GetAttr chain from self; None if unreachable."""
    if frame.module is None:
        return None
    if module is frame.module:
        return frame.self_value
    known = frame.module_values.get(id(module))
    if known is not None:
        return known
    path = _module_path(frame.module, module)
    if path is None:
        return None
    value = frame.self_value
    owner = frame.module
    for name in path:
        owner = owner._modules[name]
        value = frame.graph.add_node("prim::GetAttr", [value], [ObjectType(module_type_name(owner))],
                                     attrs={"name": name}, source=user_location(), output_names=[name]).output
        frame.module_values[id(owner)] = value
    return value


def _module_path(root: Any, target: Any) -> list[str] | None:
    queue = [(root, [])]
    seen = {id(root)}
    while queue:
        node, path = queue.pop(0)
        for name, child in node._modules.items():
            if child is target:
                return path + [name]
            if id(child) not in seen:
                seen.add(id(child))
                queue.append((child, path + [name]))
    return None


def traced_attribute(module: Any, name: str, array: Any) -> Any:
    """A module's array attribute: a GetAttr proxy while tracing that module, else the array itself."""
    state = current_state()
    if state is None or not state.active:
        return array
    owner = module_value(state.frame, module)
    if owner is None:
        return array
    check_plain_array(array, f"the module attribute {name!r}")
    check_dtype(array.dtype, f"the module attribute {name!r}")
    node = state.graph.add_node("prim::GetAttr", [owner], [TensorType.of(array)], attrs={"name": name},
                                source=user_location(), output_names=[name])
    return state.wrap(node.output, array)


def call_module(module: Any, method: str, args: tuple, kwargs: dict) -> Any:
    """Call ``module.method`` while tracing: recorded as prim::CallMethod with the callee's graph."""
    state = current_state()
    fn = getattr(module, method)
    if state is None or not state.active:
        return fn(*args, **kwargs)
    parent = state.frame
    owner = module_value(parent, module)
    if owner is None or owner is parent.self_value:
        return fn(*args, **kwargs)  # not a submodule of the traced module: its ops inline into the caller
    if kwargs:
        args = tuple(inspect.signature(fn).bind(*args, **kwargs).arguments.values())
    sub = Graph(method)
    frame = Frame(sub, module)
    frame.self_value = sub.add_input(ObjectType(module_type_name(module)), "self")
    names = parameter_names(fn, len(args))
    call_inputs, sub_args = [owner], []
    state.frames.append(frame)
    try:
        for arg, name in zip(args, names):
            if isinstance(arg, TracedArray):
                if arg._graph is not parent.graph:
                    raise TracingError("a traced array from an enclosing call was passed to a submodule call")
                call_inputs.append(arg._value)
                sub_args.append(state.wrap(sub.add_input(arg._value.type, name), arg._concrete, arg._weak))
                sub_args[-1]._call_argument = True
            else:
                sub_args.append(arg)
        out = fn(*sub_args)
        tree, leaves = flatten_outputs(state, out, strict=True, where=f"{type(module).__name__}.{method} output")
        sub.outputs = leaves
        sub.meta["output_tree"] = tree
        concrete = [state.values[v] for v in leaves]
    finally:
        state.frames.pop()
    node = parent.graph.add_node("prim::CallMethod", call_inputs, [v.type for v in leaves],
                                 attrs={"name": method}, source=user_location(), subgraph=sub)
    return unflatten_outputs(tree, [state.wrap(v, c) for v, c in zip(node.outputs, concrete)])


# NumPy functions traced as compositions of the operations above (np.linalg.norm, np.einsum, np.pad, ...)
from . import decompositions, manipulation  # noqa: E402,F401  (registers them)
from . import indexing  # noqa: E402  (indexing and assignment; registers np.take and others)
