"""The op table: every op gputrace knows, read by the tracer, the passes and every backend.

Each :class:`OpDef` says what an op is (its category), how to run it on any
NumPy-compatible module ``xp`` (NumPy for the reference, CuPy while tracing on
the GPU), how to infer its output types from its input types (written once,
after JAX's abstract evaluation: NumPy's own promotion decides dtypes), how
it prints as Python for ``.code`` and, for elementwise ops, which device
function of ``cuda_templates/gputrace_ops.cuh`` computes it.
"""
from __future__ import annotations

import functools

import math
import operator
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from .errors import TracingError
from .ir import NONE_TYPE, Node, ScalarType, TensorType, Type

ELEMENTWISE = "elementwise"
REDUCTION = "reduction"
VIEW = "view"
MATMUL = "matmul"
JOIN = "join"
SPLIT = "split"
SCAN = "scan"
INDEX = "index"  # gathers and assignments by index arrays: run by the array library, like matmul (gathers fuse)
PRIM = "prim"


@dataclass(frozen=True)
class OpDef:
    name: str
    category: str
    impl: Callable[..., Any]            # impl(xp, *inputs, **attrs) -> array or list of arrays
    infer: Callable[[list, dict], list]  # infer(input_types, attrs) -> output types
    cuda: str | None = None             # device function for elementwise ops
    python: Callable[[list[str], dict], str] | None = None  # source for .code
    doc: str = ""
    reduction: Reduction | None = None  # for reductions: how they reduce (``REDUCTION_ROWS``)

    @property
    def kind(self) -> str:
        return f"np::{self.name}"


OPS: dict[str, OpDef] = {}


def register(op: OpDef) -> OpDef:
    OPS[op.kind] = op
    return op


def lookup(kind: str) -> OpDef:
    try:
        return OPS[kind]
    except KeyError:
        raise KeyError(f"no op {kind!r} in the op table") from None


# ----------------------------------------------------------------------------- type helpers


def witness(t: Type | None, ndim: int | None = None) -> Any:
    """A tiny concrete stand-in for a value of type ``t``, for NumPy to promote."""
    if t is None or t == NONE_TYPE:
        return None
    if isinstance(t, ScalarType):
        return t.kind(1)
    if isinstance(t, TensorType):
        return np.ones((1,) * (t.ndim if ndim is None else ndim), dtype=t.dtype)
    raise TracingError(f"expected an array or a scalar, got {t}")


def result_dtype(fn: Callable, types: Sequence[Type | None], **kwargs) -> np.dtype:
    """The dtype NumPy gives ``fn`` on inputs of ``types`` (Python scalars weak, as NumPy 2)."""
    args = [np.ones((), t.dtype) if isinstance(t, TensorType) else witness(t) for t in types]
    with np.errstate(all="ignore"):
        return np.asarray(fn(*args, **kwargs)).dtype


def tensor_types(types: Sequence[Type | None]) -> list[TensorType]:
    return [t for t in types if isinstance(t, TensorType)]


def common_device(types: Sequence[Type | None]) -> str:
    devices = {t.device for t in tensor_types(types)}
    if len(devices) > 1:
        from .errors import DeviceMismatchError
        raise DeviceMismatchError(f"inputs live on different devices: {sorted(devices)}")
    return devices.pop() if devices else "cpu"


def broadcast_shape(types: Sequence[Type | None]) -> tuple[int, ...]:
    return tuple(np.broadcast_shapes(*[t.shape for t in tensor_types(types)]))


def normalize_axes(axis: Any, ndim: int, op: str = "reduction") -> tuple[int, ...] | None:
    """``axis`` as a sorted tuple of non-negative ints (None stays None), checked like NumPy."""
    if axis is None:
        return None
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    result = []
    for a in axes:
        a = operator.index(a)
        if not -ndim <= a < ndim:
            raise np.exceptions.AxisError(a, ndim)
        result.append(a % ndim)
    if len(set(result)) != len(result):
        raise ValueError(f"{op}: duplicate value in 'axis'")
    return tuple(sorted(result))


def _py_call(name: str, args: list[str], attrs: dict, prefix: str = "np.") -> str:
    items = list(args) + [f"{k}={_py_literal(v)}" for k, v in attrs.items()]
    return f"{prefix}{name}({', '.join(items)})"


def _py_literal(value: Any) -> str:
    if isinstance(value, np.dtype):
        return f"np.{value.name}"
    if isinstance(value, type) and issubclass(value, np.generic):
        return f"np.{np.dtype(value).name}"
    if isinstance(value, float) and not math.isfinite(value):
        return {math.inf: "np.inf", -math.inf: "-np.inf"}.get(value, "np.nan")
    if isinstance(value, np.generic):
        return f"np.{value.dtype.name}({_py_literal(value.item())})"
    if isinstance(value, np.ndarray):
        return f"np.array({value.tolist()!r}, dtype=np.{value.dtype.name})"
    if isinstance(value, slice):
        return f"slice({value.start!r}, {value.stop!r}, {value.step!r})"
    if value is Ellipsis:
        return "..."
    if isinstance(value, tuple):
        inner = ", ".join(_py_literal(v) for v in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    return repr(value)


def python_call(op: OpDef, args: list[str], attrs: dict) -> str:
    """The Python source that runs ``op`` with NumPy, for ``.code``."""
    if op.python is not None:
        return op.python(args, attrs)
    return _py_call(op.name, args, attrs)


# ----------------------------------------------------------------------------- elementwise ops

# NumPy ufunc name -> device function in gputrace_ops.cuh
UFUNCS = {
    name: f"gt_{name}" for name in (
        "add subtract multiply floor_divide remainder fmod power negative positive absolute sign square "
        "reciprocal exp exp2 expm1 log log2 log10 log1p sqrt cbrt sin cos tan arcsin arccos arctan "
        "arctan2 sinh cosh tanh arcsinh arccosh arctanh hypot floor ceil trunc rint maximum minimum fmax "
        "fmin equal not_equal less less_equal greater greater_equal logical_and logical_or logical_xor "
        "logical_not bitwise_and bitwise_or bitwise_xor invert left_shift right_shift isnan isinf isfinite "
        "signbit copysign logaddexp logaddexp2 heaviside deg2rad rad2deg").split()
}
UFUNCS["divide"] = "gt_true_divide"
# ufuncs NumPy exposes under a second name: recorded under the canonical one
UFUNC_ALIASES = {"degrees": "rad2deg", "radians": "deg2rad", "fabs": "absolute", "bitwise_not": "invert",
                 "bitwise_invert": "invert", "bitwise_left_shift": "left_shift",
                 "bitwise_right_shift": "right_shift"}


def _elementwise_infer(fn: Callable) -> Callable:
    def infer(types: list, attrs: dict) -> list[Type]:
        dtype = result_dtype(fn, types, **attrs)
        return [TensorType(dtype, broadcast_shape(types), None, common_device(types))]
    return infer


def _ufunc_op(name: str, cuda: str) -> OpDef:
    def impl(xp, *args):  # the name is closed over, never a keyword a node's attributes could set
        return getattr(xp, name)(*args)
    return OpDef(name, ELEMENTWISE, impl, _elementwise_infer(getattr(np, name)), cuda=cuda)


# the ops whose impl is the array module's ufunc of that name called on the inputs, and nothing else
PLAIN_UFUNC_OPS = {_name: register(_ufunc_op(_name, _cuda)) for _name, _cuda in UFUNCS.items()}


def ufunc_loop_dtypes(kind: str, types: Sequence[Type]) -> tuple[list[np.dtype], np.dtype]:
    """The dtypes a ufunc's inner loop computes in: inputs are cast to these first."""
    ufunc = getattr(np, lookup(kind).name)
    spec = []
    for t in types:
        if isinstance(t, ScalarType):
            spec.append(np.dtype(bool) if t.kind is bool else t.kind)
        else:
            spec.append(t.dtype)
    dtypes = ufunc.resolve_dtypes(tuple(spec) + (None,) * ufunc.nout)
    return list(dtypes[:ufunc.nin]), dtypes[ufunc.nin]


def _where_impl(xp, cond, a, b):
    return xp.where(cond, a, b)


register(OpDef("where", ELEMENTWISE, _where_impl, _elementwise_infer(np.where), cuda="gt_where"))


def _clip_impl(xp, x, lo, hi):
    return xp.clip(x, lo, hi)


register(OpDef("clip", ELEMENTWISE, _clip_impl, _elementwise_infer(np.clip), cuda="gt_clip"))


def _astype_infer(types, attrs):
    (x,) = types
    return [TensorType(attrs["dtype"], x.shape, None, x.device)]


register(OpDef("astype", ELEMENTWISE, lambda xp, x, dtype: x.astype(dtype), _astype_infer,
               cuda="gt_cast", python=lambda a, at: f"{a[0]}.astype({_py_literal(at['dtype'])})"))


def _full_like_impl(xp, x, fill_value, dtype):
    return xp.full_like(x, fill_value, dtype=dtype)


def _full_like_infer(types, attrs):
    (x,) = types
    return [TensorType(attrs["dtype"], x.shape, None, x.device)]


register(OpDef("full_like", ELEMENTWISE, _full_like_impl, _full_like_infer))


def _fill_like_infer(types, attrs):
    (x,) = types
    dtype = x.dtype if attrs.get("dtype") is None else np.dtype(attrs["dtype"])
    return [TensorType(dtype, x.shape, None, x.device)]


def _fill_like_impl(name: str) -> Callable:
    def impl(xp, x, dtype=None):
        return getattr(xp, name)(x, dtype=dtype)
    return impl


# recorded as called; normalize turns them into full_like
for _name in ("zeros_like", "ones_like"):
    register(OpDef(_name, ELEMENTWISE, _fill_like_impl(_name), _fill_like_infer))


def _copy_infer(types, attrs):
    (x,) = types
    return [TensorType(x.dtype, x.shape, None, x.device)]


register(OpDef("copy", ELEMENTWISE, lambda xp, x: x.copy(), _copy_infer,
               python=lambda a, at: f"{a[0]}.copy()"))


# ----------------------------------------------------------------------------- reductions

LOWEST, HIGHEST = "lowest", "highest"  # max's and min's identities: the accumulator type's extreme values
MEAN, VARIANCE, SQRT = "mean", "variance", "sqrt"  # finishing steps, from the combined value to the result


@dataclass(frozen=True)
class Reduction:
    """How a reduction reduces, read by the tracer (arguments), the reference (NumPy's function) and the
    renderer (the kernel): partial results combined by ``combine`` (a functor of gputrace_reduce.cuh), each
    starting at ``identity``, in the dtype ``accumulate`` says, then finished by the steps of ``finish``."""
    numpy: Callable       # NumPy's function: it runs the reference, and its signature binds the arguments
    combine: str          # the functor combining two partial results
    identity: Any         # the start: a number, LOWEST or HIGHEST, or None for an index (no element yet)
    accumulate: str       # the accumulator's dtype: the "input"'s, the "result"'s or "bool"
    finish: tuple[str, ...] = ()  # MEAN: divided by the count; VARIANCE: two-pass, over N - ddof; SQRT
    empty_error: str | None = None  # NumPy's error for no elements (where initial= gives none)
    index: bool = False   # the result is the index of the element found (partial results: value and index)
    ufunc: str | None = None  # the ufunc whose ``reduce`` it is (np.add.reduce is sum)

    @property
    def name(self) -> str:
        return self.numpy.__name__

    @property
    def two_pass(self) -> bool:
        """Reduced in two passes over the row: the mean, then the squared deviations from it."""
        return VARIANCE in self.finish

    def accumulator(self, source: np.dtype, result: np.dtype) -> np.dtype:
        """The dtype it accumulates in: at least float32 for floats (float16 sums in float32)."""
        if self.accumulate == "bool":
            return np.dtype(bool)
        dtype = source if self.accumulate == "input" else result
        return np.dtype(np.float32) if dtype == np.float16 else dtype


REDUCTION_ROWS = {row.name: row for row in (
    Reduction(np.sum, "GtSum", 0, "result", ufunc="add"),
    Reduction(np.prod, "GtProd", 1, "result", ufunc="multiply"),
    Reduction(np.max, "GtMax", LOWEST, "input", ufunc="maximum",
              empty_error="zero-size array to reduction operation maximum which has no identity"),
    Reduction(np.min, "GtMin", HIGHEST, "input", ufunc="minimum",
              empty_error="zero-size array to reduction operation minimum which has no identity"),
    Reduction(np.mean, "GtSum", 0, "result", (MEAN,)),
    Reduction(np.var, "GtSum", 0, "result", (VARIANCE,)),
    Reduction(np.std, "GtSum", 0, "result", (VARIANCE, SQRT)),
    Reduction(np.any, "GtAny", False, "bool", ufunc="logical_or"),
    Reduction(np.all, "GtAll", True, "bool", ufunc="logical_and"),
    Reduction(np.argmax, "GtArgMax", None, "input", empty_error="attempt to get argmax of an empty sequence",
              index=True),
    Reduction(np.argmin, "GtArgMin", None, "input", empty_error="attempt to get argmin of an empty sequence",
              index=True),
)}
REDUCTIONS = tuple(REDUCTION_ROWS)


def reduced_shape(shape: tuple[int, ...], axes: tuple[int, ...] | None, keepdims: bool) -> tuple[int, ...]:
    if axes is None:
        axes = tuple(range(len(shape)))
    if keepdims:
        return tuple(1 if i in axes else s for i, s in enumerate(shape))
    return tuple(s for i, s in enumerate(shape) if i not in axes)


def _reduction_impl(name: str) -> Callable:
    index = REDUCTION_ROWS[name].index

    def impl(xp, x, axis=None, keepdims=False, **kwargs):
        if index and axis is not None:  # np.argmax takes one int axis; the attribute is a 1-tuple
            axis = axis[0]
        return getattr(xp, name)(x, axis=axis, keepdims=keepdims, **kwargs)
    return impl


def _reduction_infer(name: str) -> Callable:
    def infer(types, attrs):
        (x,) = types
        axis, keepdims = attrs.get("axis"), attrs.get("keepdims", False)
        extra = {k: v for k, v in attrs.items() if k not in ("axis", "keepdims")}
        w = witness(x)
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # the witness's "Degrees of freedom <= 0", not the user's
            dtype = np.asarray(_reduction_impl(name)(np, w, axis=axis, keepdims=keepdims, **extra)).dtype
        return [TensorType(dtype, reduced_shape(x.shape, axis, keepdims), None, x.device)]
    return infer


def _arg_reduction_python(name: str) -> Callable:
    def python(args, attrs):  # np.argmax takes one int axis; the attribute is a 1-tuple
        axis = attrs.get("axis")
        return _py_call(name, args, {**attrs, "axis": axis if axis is None else axis[0]})
    return python


for _name, _row in REDUCTION_ROWS.items():
    register(OpDef(_name, REDUCTION, _reduction_impl(_name), _reduction_infer(_name),
                   python=_arg_reduction_python(_name) if _row.index else None, reduction=_row))


def view_base(value: Any) -> Any:
    """The value that ``value`` is a view of (through views of views), or ``value`` itself."""
    while value.producer is not None and value.producer.kind in OPS and OPS[value.producer.kind].category == VIEW:
        value = value.producer.inputs[0]
    return value


def reduction_of(node: Node) -> Reduction:
    """The reduction row of a reduction node."""
    return lookup(node.kind).reduction


# ----------------------------------------------------------------------------- scans
# Run by the array library (NumPy; CuPy on the device), like matmul: no generated kernel yet. Sorts too.

SCANS = ("cumsum", "cumprod")


def _scan_impl(name: str) -> Callable:
    def impl(xp, x, axis=None, dtype=None):
        return getattr(xp, name)(x.reshape(1) if x.ndim == 0 else x, axis=axis, dtype=dtype)
    return impl


def _scan_infer(name: str) -> Callable:
    def infer(types, attrs):
        (x,) = types
        axis, dtype = attrs.get("axis"), attrs.get("dtype")
        result = np.dtype(dtype) if dtype is not None else getattr(np, name)(witness(x)).dtype
        shape = x.shape if axis is not None and x.ndim else (int(np.prod(x.shape, dtype=np.int64)),)
        return [TensorType(result, shape, None, x.device)]
    return infer


for _name in SCANS:
    register(OpDef(_name, SCAN, _scan_impl(_name), _scan_infer(_name)))


def _sort_impl(name: str) -> Callable:
    def impl(xp, x, axis=-1, kind=None):
        # CuPy's sorts are stable and take no kind: the same values as NumPy's, ties of argsort in stable order
        kind = {"kind": kind} if xp is np else {}
        return getattr(xp, name)(x.reshape(1) if x.ndim == 0 else x, axis=axis, **kind)
    return impl


def _sort_infer(name: str) -> Callable:
    """np.sort keeps the dtype, np.argsort gives intp; axis=None (and argsort of a 0-d array) sorts the
    flattened array."""
    def infer(types, attrs):
        (x,) = types
        axis, ndim = attrs.get("axis"), 1 if x.ndim == 0 and name == "argsort" else x.ndim
        if axis is not None:
            normalize_axes(axis, ndim, name)
        flat = axis is None or ndim != x.ndim
        shape = (int(np.prod(x.shape, dtype=np.int64)),) if flat else x.shape
        return [TensorType(np.dtype(np.intp) if name == "argsort" else x.dtype, shape, None, x.device)]
    return infer


for _name in ("sort", "argsort"):
    register(OpDef(_name, SCAN, _sort_impl(_name), _sort_infer(_name)))


# ----------------------------------------------------------------------------- views


def _view_type(x: TensorType, shape, strides) -> list[TensorType]:
    return [TensorType(x.dtype, tuple(shape), tuple(strides), x.device)]


def _transpose_infer(types, attrs):
    (x,) = types
    axes = attrs["axes"]
    return _view_type(x, [x.shape[a] for a in axes], [x.strides[a] for a in axes])


register(OpDef("transpose", VIEW, lambda xp, x, axes: xp.transpose(x, axes), _transpose_infer))


def diagonal_length(n1: int, n2: int, offset: int) -> int:
    """Elements on the ``offset`` diagonal of an n1 x n2 matrix (above the main one for offset > 0)."""
    return max(0, min(n1, n2 - offset) if offset >= 0 else min(n1 + offset, n2))


def _diagonal_infer(types, attrs):
    """NumPy's diagonal view: the two axes go, the diagonal comes last, its stride the sum of theirs."""
    (x,) = types
    a, b, offset = attrs["axis1"], attrs["axis2"], attrs["offset"]
    label = attrs.get("einsum_label")  # an einsum's repeated label: the two axes must be as long
    if label is not None and x.shape[a] != x.shape[b]:
        raise ValueError(f"dimensions in single operand for collapsing index '{label}' don't match "
                         f"({x.shape[a]} != {x.shape[b]})")
    rest = [d for d in range(x.ndim) if d not in (a, b)]
    return _view_type(x, [x.shape[d] for d in rest] + [diagonal_length(x.shape[a], x.shape[b], offset)],
                      [x.strides[d] for d in rest] + [x.strides[a] + x.strides[b]])


register(OpDef("diagonal", VIEW, lambda xp, x, offset, axis1, axis2, einsum_label=None:
               xp.diagonal(x, offset, axis1, axis2), _diagonal_infer,
               python=lambda args, attrs: _py_call("diagonal", args, {k: v for k, v in attrs.items()
                                                                     if k != "einsum_label"})))


def _swapaxes_infer(types, attrs):
    (x,) = types
    axes = list(range(x.ndim))
    a, b = attrs["axis1"] % x.ndim, attrs["axis2"] % x.ndim
    axes[a], axes[b] = axes[b], axes[a]
    return _transpose_infer(types, {"axes": tuple(axes)})


register(OpDef("swapaxes", VIEW, lambda xp, x, axis1, axis2: xp.swapaxes(x, axis1, axis2), _swapaxes_infer))
register(OpDef("T", VIEW, lambda xp, x: x.T,
               lambda types, attrs: _transpose_infer(types, {"axes": tuple(reversed(range(types[0].ndim)))}),
               python=lambda a, at: f"{a[0]}.T"))


def resolve_reshape(size: int, shape: Sequence[int]) -> tuple[int, ...]:
    shape = [int(s) for s in shape]
    unknown = [i for i, s in enumerate(shape) if s == -1]
    known = int(np.prod([s for s in shape if s != -1], dtype=np.int64))
    if len(unknown) > 1 or any(s < -1 for s in shape):
        raise ValueError(f"cannot reshape an array of size {size} into shape {tuple(shape)}")
    if unknown:
        if known == 0 or size % known:
            raise ValueError(f"cannot reshape an array of size {size} into shape {tuple(shape)}")
        shape[unknown[0]] = size // known
    if int(np.prod(shape, dtype=np.int64)) != size:
        raise ValueError(f"cannot reshape an array of size {size} into shape {tuple(shape)}")
    return tuple(shape)


def _reshape_infer(types, attrs):
    (x,) = types
    shape = resolve_reshape(x.size, attrs["shape"])
    return [TensorType(x.dtype, shape, None, x.device)]


register(OpDef("reshape", VIEW, lambda xp, x, shape: xp.reshape(x, shape), _reshape_infer))


def _broadcast_to_infer(types, attrs):
    (x,) = types
    shape = tuple(attrs["shape"])
    np.broadcast_shapes(x.shape, shape)  # raises like NumPy
    if len(shape) < x.ndim:
        raise ValueError(f"cannot broadcast shape {x.shape} to {shape}")
    lead = len(shape) - x.ndim
    strides = [0] * lead + [0 if (n == 1 and m != 1) else st
                            for n, m, st in zip(x.shape, shape[lead:], x.strides)]
    return _view_type(x, shape, strides)


register(OpDef("broadcast_to", VIEW, lambda xp, x, shape: xp.broadcast_to(x, shape), _broadcast_to_infer))


def _expand_dims_infer(types, attrs):
    (x,) = types
    axes = normalize_axes(attrs["axis"], x.ndim + len(tuple(np.atleast_1d(attrs["axis"]))), "expand_dims")
    shape, strides, it = [], [], iter(zip(x.shape, x.strides))
    for i in range(x.ndim + len(axes)):
        if i in axes:
            shape.append(1)
            strides.append(0)
        else:
            n, st = next(it)
            shape.append(n)
            strides.append(st)
    return _view_type(x, shape, strides)


register(OpDef("expand_dims", VIEW, lambda xp, x, axis: xp.expand_dims(x, axis), _expand_dims_infer))


def _squeeze_infer(types, attrs):
    (x,) = types
    axes = normalize_axes(attrs.get("axis"), x.ndim, "squeeze")
    if axes is None:
        axes = tuple(i for i, n in enumerate(x.shape) if n == 1)
    for a in axes:
        if x.shape[a] != 1:
            raise ValueError("cannot select an axis to squeeze out which has size not equal to one")
    keep = [i for i in range(x.ndim) if i not in axes]
    return _view_type(x, [x.shape[i] for i in keep], [x.strides[i] for i in keep])


register(OpDef("squeeze", VIEW, lambda xp, x, axis=None: xp.squeeze(x, axis), _squeeze_infer))


def expand_index(index: tuple, ndim: int) -> tuple:
    """Replace ``...`` by full slices; check the number of indexed dimensions."""
    used = sum(1 for i in index if i is not None and i is not Ellipsis)
    if used > ndim:
        raise IndexError(f"too many indices for array: array is {ndim}-dimensional, but {used} were indexed")
    if Ellipsis in index:
        at = index.index(Ellipsis)
        index = index[:at] + (slice(None),) * (ndim - used) + index[at + 1:]
    return index + (slice(None),) * (ndim - sum(1 for i in index if i is not None))


def selects_everything(index: tuple, shape: tuple[int, ...]) -> bool:
    """Does the basic index ``index`` select every element of an array of ``shape``, in order, adding no axis
    (``x[...]``, ``x[:]``, ``x[:, 0:n]`` of an axis of n)? Then it is the array itself."""
    if any(item is None for item in index):
        return False
    items = expand_index(index, len(shape))
    return all(isinstance(item, slice) and item.indices(n) == (0, n, 1) for item, n in zip(items, shape))


def _getitem_infer(types, attrs):
    (x,) = types
    shape, strides, dim = [], [], 0
    for item in expand_index(attrs["index"], x.ndim):
        if item is None:
            shape.append(1)
            strides.append(0)
            continue
        n = x.shape[dim]
        if isinstance(item, slice):
            start, stop, step = item.indices(n)
            shape.append(len(range(start, stop, step)))
            strides.append(x.strides[dim] * step)
        else:
            if not -n <= item < n:
                raise IndexError(f"index {item} is out of bounds for axis {dim} with size {n}")
        dim += 1
    return _view_type(x, shape, strides)


def _getitem_python(args, attrs):
    parts = []
    for item in attrs["index"]:
        if isinstance(item, slice):
            parts.append(":".join("" if p is None else str(p) for p in (item.start, item.stop))
                         + ("" if item.step is None else f":{item.step}"))
        else:
            parts.append({None: "None", Ellipsis: "..."}.get(item, str(item)) if item is None or item is Ellipsis
                         else str(item))
    if not parts:
        return f"{args[0]}[()]"
    return f"{args[0]}[{', '.join(parts)}{',' if len(parts) == 1 else ''}]"


register(OpDef("getitem", VIEW, lambda xp, x, index: x[index], _getitem_infer, python=_getitem_python))
register(OpDef("ravel", VIEW, lambda xp, x: xp.ravel(x),
               lambda types, attrs: _reshape_infer(types, {"shape": (-1,)})))


# ----------------------------------------------------------------------------- gather and assignment
# An index is a tuple as NumPy takes it, with INDEX_ARRAY where an integer array goes: the arrays are the
# op's inputs after x (and after the value for assignments), in order.

INDEX_ARRAY = "array"


def fill_index(index: tuple, arrays: Sequence[Any]) -> tuple:
    """``index`` with its INDEX_ARRAY places filled by ``arrays`` in order."""
    it = iter(arrays)
    return tuple(next(it) if isinstance(item, str) else item for item in index)


@dataclass(frozen=True)
class IndexLayout:
    """Where ``x[index]``'s elements come from, by NumPy's rules (what a kernel reading a gather computes).

    ``shape`` is the result's shape; ``sources`` has one entry per axis of x: ("slice", result axis, start,
    step), ("array", number of the index array) or ("int", a non-negative index); the index arrays broadcast
    to ``advanced_shape``, which occupies the result's axes from ``advanced_start``."""
    shape: tuple[int, ...]
    sources: tuple[tuple, ...]
    advanced_start: int
    advanced_shape: tuple[int, ...]


def index_layout(shape: tuple[int, ...], index: tuple, array_shapes: Sequence[tuple[int, ...]]) -> IndexLayout:
    """The :class:`IndexLayout` of ``x[index]`` for x of ``shape``; raises IndexError as NumPy does.

    With index arrays, integers are advanced indices too; the advanced indices broadcast together, and their
    shape takes their place if they are adjacent, else comes first."""
    items = expand_index(index, len(shape))
    shapes = iter(array_shapes)
    has_arrays = any(isinstance(item, str) for item in items)
    pieces: list[tuple[int, int]] = []  # (position in the index, size of the result axis it gives)
    sources: list[tuple] = []  # per axis of x, slices naming their piece until the result axes are known
    advanced: list[int] = []
    advanced_shapes: list[tuple[int, ...]] = []
    dim = arrays = 0
    for position, item in enumerate(items):
        if item is None:
            pieces.append((position, 1))
            continue
        n = shape[dim]
        if isinstance(item, slice):
            start, stop, step = item.indices(n)
            sources.append(("slice", len(pieces), start, step))
            pieces.append((position, len(range(start, stop, step))))
        elif isinstance(item, str):
            advanced.append(position)
            advanced_shapes.append(tuple(next(shapes)))
            sources.append(("array", arrays))
            arrays += 1
        else:
            if not -n <= item < n:
                raise IndexError(f"index {item} is out of bounds for axis {dim} with size {n}")
            if has_arrays:
                advanced.append(position)
                advanced_shapes.append(())
            sources.append(("int", item % n))
        dim += 1
    if not advanced:
        return IndexLayout(tuple(n for _, n in pieces), tuple(sources), 0, ())
    try:
        broadcast = tuple(np.broadcast_shapes(*advanced_shapes))
    except ValueError:
        given = " ".join(str(s) for s in advanced_shapes if s != ())
        raise IndexError(f"shape mismatch: indexing arrays could not be broadcast together with shapes {given} ")
    adjacent = advanced == list(range(advanced[0], advanced[-1] + 1))
    before = [k for k, (position, _) in enumerate(pieces) if adjacent and position < advanced[0]]
    after = [k for k, (position, _) in enumerate(pieces) if not adjacent or position > advanced[0]]
    axis_of = {k: a for a, k in enumerate(before)}
    axis_of.update({k: len(before) + len(broadcast) + a for a, k in enumerate(after)})
    sources = [(s[0], axis_of[s[1]], *s[2:]) if s[0] == "slice" else s for s in sources]
    out = tuple(pieces[k][1] for k in before) + broadcast + tuple(pieces[k][1] for k in after)
    return IndexLayout(out, tuple(sources), len(before), broadcast)


def indexed_shape(shape: tuple[int, ...], index: tuple, array_shapes: Sequence[tuple[int, ...]]) -> tuple[int, ...]:
    """The shape of ``x[index]`` by NumPy's rules (see :func:`index_layout`); raises IndexError as NumPy does."""
    return index_layout(shape, index, array_shapes).shape


def _index_arrays_checked(types: Sequence[Type]) -> list[tuple[int, ...]]:
    for t in types:
        if not isinstance(t, TensorType) or t.dtype.kind not in "iu":
            raise IndexError("arrays used as indices must be of integer (or boolean) type")
    return [t.shape for t in types]


def check_index_bounds(xp: Any, shape: tuple[int, ...], index: tuple, arrays: Sequence[Any]) -> None:
    """Raise NumPy's IndexError for an index array entry out of bounds (CuPy wraps them around instead)."""
    it = iter(arrays)
    dim = 0
    for item in expand_index(index, len(shape)):
        if item is None:
            continue
        if isinstance(item, str):
            array, n = next(it), shape[dim]
            bad = (array < -n) | (array >= n)
            if bool(bad.any()):
                value = int(array[bad].ravel()[0])
                raise IndexError(f"index {value} is out of bounds for axis {dim} with size {n}")
        dim += 1


def _gather_impl(xp, x, *arrays, index):
    if xp is not np:
        check_index_bounds(xp, x.shape, index, arrays)
    selected = x[fill_index(index, arrays)]  # a NumPy scalar where every index is 0-d; ascontiguousarray makes 1-d
    return xp.asarray(selected) if selected.ndim == 0 else xp.ascontiguousarray(selected)


def _gather_infer(types, attrs):
    x, *arrays = types
    shape = indexed_shape(x.shape, attrs["index"], _index_arrays_checked(arrays))
    return [TensorType(x.dtype, shape, None, common_device(types))]


def _index_python(x: str, index: tuple, arrays: Sequence[str]) -> str:
    return _getitem_python([x], {"index": fill_index(index, arrays)})


register(OpDef("gather", INDEX, _gather_impl, _gather_infer,
               python=lambda a, at: _index_python(a[0], at["index"], a[1:]),
               doc="x[index] with integer index arrays (NumPy's advanced indexing): a copy"))


def check_assignable(value: Type, selected: tuple[int, ...], message: str = "could not broadcast input array from "
                     "shape {value} into shape {selected}") -> None:
    """Raise NumPy's ValueError unless ``value`` broadcasts to the ``selected`` shape (leading 1s may go)."""
    shape = value.shape if isinstance(value, TensorType) else ()
    trimmed = shape
    while len(trimmed) > len(selected) and trimmed[0] == 1:
        trimmed = trimmed[1:]
    if len(trimmed) > len(selected) or any(v not in (1, s) for v, s in zip(reversed(trimmed), reversed(selected))):
        def spelled(s):  # as NumPy prints shapes in these messages: (3,2)
            return "(" + ",".join(map(str, s)) + ("," if len(s) == 1 else "") + ")"
        raise ValueError(message.format(value=spelled(shape), selected=spelled(selected)))


ADVANCED_MISMATCH = "shape mismatch: value array of shape {value} could not be broadcast to indexing result of shape " \
                    "{selected}"


def _assignment_infer(types, attrs):
    x, value, *arrays = types
    selected = indexed_shape(x.shape, attrs["index"], _index_arrays_checked(arrays))
    check_assignable(value, selected, *([ADVANCED_MISMATCH] if arrays else []))
    return [TensorType(x.dtype, x.shape, None, common_device(types))]


def _setitem_impl(xp, x, value, *arrays, index):
    full = fill_index(index, arrays)
    if xp is not np and arrays:
        check_index_bounds(xp, x.shape, index, arrays)
        if _repeats_positions(xp, x.shape, full):  # CuPy writes repeated places in no set order; NumPy the last
            return xp.asarray(_setitem_impl(np, to_host(x), to_host(value), *[to_host(a) for a in arrays], index=index))
    out = x.copy()
    out[full] = value
    return out


def _repeats_positions(xp: Any, shape: tuple[int, ...], index: tuple) -> bool:
    positions = xp.arange(math.prod(shape)).reshape(shape)[index]
    return int(xp.unique(positions).size) != int(positions.size)


def to_host(value: Any) -> Any:
    """A CuPy array copied to the host (a NumPy array); anything else as it is."""
    return value.get() if hasattr(value, "get") and not isinstance(value, np.ndarray) else value


def _index_source(index: tuple, arrays: Sequence[str]) -> str:
    """``index`` as a Python tuple expression, its arrays by name."""
    it = iter(arrays)
    items = [next(it) if isinstance(item, str) else _py_literal(item) for item in index]
    return "(" + "".join(f"{item}, " for item in items) + ")"


def _assignment_python(update: str) -> Callable[[list[str], dict], str]:
    """.code's expression for an assignment: a copy of x, updated by ``update`` (one expression per node)."""
    def python(args: list[str], attrs: dict) -> str:
        call = update.format(value=args[1], **{**attrs, "index": _index_source(attrs["index"], args[2:])})
        return f"[_assigned := {args[0]}.copy(), {call}, _assigned][-1]"
    return python


register(OpDef("setitem", INDEX, _setitem_impl, _assignment_infer,
               python=_assignment_python("_assigned.__setitem__({index}, {value})"),
               doc="x with x[index] = value: a copy of x, assigned into"))


def _ufunc_at_impl(xp, x, value, *arrays, ufunc, index):
    full = fill_index(index, arrays)
    if xp is not np and arrays:
        check_index_bounds(xp, x.shape, index, arrays)
    out = x.copy()
    at = getattr(getattr(xp, ufunc), "at", None)
    unsafe = xp is not np and np.asarray(getattr(np, ufunc)(
        np.ones((), x.dtype), np.ones((), value.dtype) if hasattr(value, "dtype") else value)).dtype != x.dtype
    if at is None or unsafe:  # NumPy's, on the host: where the library has no ufunc.at, or where the result is
        # cast back into x's dtype (NumPy computes in the wider type and casts each step unsafely)
        return xp.asarray(_ufunc_at_impl(np, to_host(x), to_host(value), *[to_host(a) for a in arrays], ufunc=ufunc,
                                         index=index))
    at(out, full, value)
    return out


def _ufunc_at_infer(types, attrs):
    x, value, *arrays = types
    selected = indexed_shape(x.shape, attrs["index"], _index_arrays_checked(arrays))
    check_assignable(value, selected, "array is not broadcastable to correct shape")
    result_dtype(getattr(np, attrs["ufunc"]), [x, value])  # NumPy's errors (no loop for the dtypes)
    # no casting check: NumPy's ufunc.at casts the result into x's dtype unsafely (np.add.at(int_x, i, 2.5))
    return [TensorType(x.dtype, x.shape, None, common_device(types))]


register(OpDef("ufunc_at", INDEX, _ufunc_at_impl, _ufunc_at_infer,
               python=_assignment_python("np.{ufunc}.at(_assigned, {index}, {value})"),
               doc="np.<ufunc>.at(x, index, value) on a copy of x: repeated places are updated repeatedly"))


# ----------------------------------------------------------------------------- matmul


def matmul_shape(a: tuple, b: tuple) -> tuple[int, ...]:
    if not a or not b:
        raise ValueError("matmul: Input operand does not have enough dimensions")
    a2 = (1,) + a if len(a) == 1 else a
    b2 = b + (1,) if len(b) == 1 else b
    if a2[-1] != b2[-2]:
        raise ValueError(f"matmul: Input operand 1 has a mismatch in its core dimension 0 "
                         f"(size {b2[-2]} is different from {a2[-1]})")
    batch = tuple(np.broadcast_shapes(a2[:-2], b2[:-2]))
    out = batch + (a2[-2], b2[-1])
    if len(a) == 1:
        out = out[:-2] + out[-1:]
    if len(b) == 1:
        out = out[:-1]
    return out


def _matmul_infer(types, attrs):
    a, b = types
    dtype = result_dtype(lambda x, y: np.matmul(np.atleast_2d(x), np.atleast_2d(y)), [a, b])
    return [TensorType(dtype, matmul_shape(a.shape, b.shape), None, common_device(types))]


register(OpDef("matmul", MATMUL, lambda xp, a, b: xp.matmul(a, b), _matmul_infer))


def _dot_infer(types, attrs):
    a, b = types
    if a.ndim == 0 or b.ndim == 0:
        return _elementwise_infer(np.multiply)(types, attrs)
    if b.ndim <= 2:
        return _matmul_infer(types, attrs)
    if a.shape[-1] != b.shape[-2]:
        raise ValueError(f"shapes {a.shape} and {b.shape} not aligned")
    shape = a.shape[:-1] + b.shape[:-2] + b.shape[-1:]
    return [TensorType(result_dtype(np.multiply, [a, b]), shape, None, common_device(types))]


register(OpDef("dot", MATMUL, lambda xp, a, b: xp.dot(a, b), _dot_infer))


# ----------------------------------------------------------------------------- joins and splits


def _concatenate_infer(types, attrs):
    axis = attrs["axis"]
    first = types[0]
    if any(t.ndim != first.ndim for t in types):
        raise ValueError("all the input arrays must have same number of dimensions")
    axis = normalize_axes(axis, first.ndim, "concatenate")[0]
    for t in types[1:]:
        for d in range(first.ndim):
            if d != axis and t.shape[d] != first.shape[d]:
                raise ValueError("all the input array dimensions except for the concatenation axis must match "
                                 f"exactly, but along dimension {d}, the array at index 0 has size "
                                 f"{first.shape[d]} and another has size {t.shape[d]}")
    shape = list(first.shape)
    shape[axis] = sum(t.shape[axis] for t in types)
    dtype = result_dtype(lambda *a: np.concatenate([np.atleast_1d(v) for v in a]), types)
    return [TensorType(dtype, shape, None, common_device(types))]


register(OpDef("concatenate", JOIN, lambda xp, *xs, axis: xp.concatenate(xs, axis=axis), _concatenate_infer,
               python=lambda a, at: f"np.concatenate([{', '.join(a)}], axis={at['axis']})"))


def _stack_infer(types, attrs):
    first = types[0]
    if any(t.shape != first.shape for t in types):
        raise ValueError("all input arrays must have the same shape")
    axis = normalize_axes(attrs["axis"], first.ndim + 1, "stack")[0]
    shape = list(first.shape)
    shape.insert(axis, len(types))
    dtype = result_dtype(lambda *a: np.stack(a), types)
    return [TensorType(dtype, shape, None, common_device(types))]


register(OpDef("stack", JOIN, lambda xp, *xs, axis: xp.stack(xs, axis=axis), _stack_infer,
               python=lambda a, at: f"np.stack([{', '.join(a)}], axis={at['axis']})"))


def split_bounds(length: int, indices_or_sections: Any) -> list[tuple[int, int]]:
    """(start, stop) of each piece of ``np.split`` along an axis of ``length``."""
    if isinstance(indices_or_sections, (int, np.integer)):
        sections = int(indices_or_sections)
        if sections <= 0 or length % sections:
            raise ValueError("array split does not result in an equal division")
        step = length // sections
        return [(i * step, (i + 1) * step) for i in range(sections)]
    cuts = [0] + [min(max(int(c) if c >= 0 else length + int(c), 0), length) for c in indices_or_sections] + [length]
    return [(cuts[i], max(cuts[i], cuts[i + 1])) for i in range(len(cuts) - 1)]


def _split_infer(types, attrs):
    (x,) = types
    axis = normalize_axes(attrs["axis"], x.ndim, "split")[0]
    out = []
    for start, stop in split_bounds(x.shape[axis], attrs["indices_or_sections"]):
        index = (slice(None),) * axis + (slice(start, stop),)
        out += _getitem_infer([x], {"index": index})
    return out


register(OpDef("split", SPLIT, lambda xp, x, indices_or_sections, axis: xp.split(x, indices_or_sections, axis),
               _split_infer))


# ----------------------------------------------------------------------------- inference entry point


def infer_types(kind: str, input_types: list, attrs: dict) -> list[Type]:
    """Output types of ``kind`` applied to inputs of ``input_types``."""
    return lookup(kind).infer(list(input_types), dict(attrs))


def run_op(kind: str, xp: Any, inputs: list, attrs: dict) -> Any:
    """Run ``kind`` with the array module ``xp``; the one place that calls an op's impl."""
    with np.errstate(all="ignore"):
        return lookup(kind).impl(xp, *inputs, **attrs)


def bind_op(kind: str, xp: Any, attrs: dict) -> Callable[..., Any]:
    """``kind``'s impl with ``xp`` and ``attrs`` bound, for executors that call it many times; call it inside
    ``np.errstate(all="ignore")``, as :func:`run_op` does."""
    return functools.partial(lookup(kind).impl, xp, **attrs)


def is_elementwise(kind: str) -> bool:
    op = OPS.get(kind)
    return op is not None and op.category == ELEMENTWISE


def is_reduction(kind: str) -> bool:
    op = OPS.get(kind)
    return op is not None and op.category == REDUCTION


def is_element_load(kind: str) -> bool:
    """Is each element of the op's result one element of its first input, at a place its other inputs say (a
    gather)? A kernel then reads it where it is used: the op fuses into its consumers' kernel as a load."""
    return kind == "np::gather"
