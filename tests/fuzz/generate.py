"""Hypothesis strategies for random NumPy programs over the ops gputrace supports.

``programs()`` draws broadcast-compatible input arrays (0-d, size-0 and size-1
dimensions included, every supported dtype, transposed, strided and reversed
layouts, NaN, infinities, -0.0, huge, tiny and integer extremes) and then a DAG
of operations, each applied to earlier values (or Python and NumPy scalars).
Every operation is run with NumPy as it is drawn: one NumPy rejects ends the
program only now and then (gputrace must reject it alike), otherwise it is
dropped; so are discontinuous functions of inexact values (``floor(exp(x))``),
whose results may legitimately differ between correct implementations.
Everything is drawn from hypothesis, so failures shrink to small programs.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from hypothesis import strategies as st

from .program import (EXACT, LAYOUTS, OTHER_SIZE, UNSTABLE, VALUE_KINDS, Arange, ArrayInput, DType, Evaluator,
                      FuzzerError, Index, IntList, NumpyScalar, Op, Param, Program, Ref, SelfMask, build_input)

# weighted by repetition: common dtypes come up more often
DTYPES = ("float32",) * 5 + ("float64",) * 3 + ("float16",) * 2 + ("int32",) * 2 + ("int64",) * 2 + (
    "int8", "int16", "uint8", "uint8", "uint16", "uint32", "uint64", "bool", "bool")
ALL_DTYPES = ("bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
              "float16", "float32", "float64")

UNARY = ("negative positive absolute sign square reciprocal exp exp2 expm1 log log2 log10 log1p sqrt cbrt sin cos "
         "tan arcsin arccos arctan sinh cosh tanh arcsinh arccosh arctanh floor ceil trunc rint logical_not invert "
         "isnan isinf isfinite signbit deg2rad rad2deg fabs degrees radians bitwise_not round").split()
BINARY = ("add subtract multiply divide floor_divide remainder fmod power maximum minimum fmax fmin equal not_equal "
          "less less_equal greater greater_equal logical_and logical_or logical_xor bitwise_and bitwise_or "
          "bitwise_xor left_shift right_shift arctan2 hypot copysign logaddexp logaddexp2 heaviside").split()
BINARY_OPERATORS = {"add": "+", "subtract": "-", "multiply": "*", "divide": "/", "floor_divide": "//",
                    "remainder": "%", "power": "**", "bitwise_and": "&", "bitwise_or": "|", "bitwise_xor": "^",
                    "left_shift": "<<", "right_shift": ">>", "less": "<", "less_equal": "<=", "greater": ">",
                    "greater_equal": ">=", "equal": "==", "not_equal": "!="}
UNARY_OPERATORS = {"negative": ("unop", "-"), "invert": ("unop", "~"), "absolute": ("builtin", "abs"),
                   "positive": ("unop", "+")}
REDUCTIONS = "sum prod max min mean var std any all argmax argmin".split()
SCALARS = (1, 2, 0, -1, 3, 0.5, -2.5, 1.5, True, False, 1e30, -1e-30, math.nan, math.inf, -math.inf, 255, 300,
           -129, 2 ** 31, 2 ** 63 - 1, -0.0, 65504.0, 7)
NUMPY_SCALARS = (NumpyScalar("float32", 1.5), NumpyScalar("float64", -0.25), NumpyScalar("float16", 0.1),
                 NumpyScalar("int8", -3), NumpyScalar("uint8", 200), NumpyScalar("int64", 5),
                 NumpyScalar("bool_", True), NumpyScalar("uint64", 3))
FAMILIES = ("binary",) * 8 + ("unary",) * 5 + ("where", "clip", "astype", "astype") + ("reduction",) * 4 + (
    "transpose", "index", "index", "expand_dims", "squeeze", "broadcast_to", "reshape", "ravel",
    "matmul", "concatenate", "stack", "fill", "idiom", "idiom", "norm", "einsum", "scan", "nan_reduction",
    "gather", "gather", "assign", "assign", "inplace", "array_function", "array_function", "array_function")
INDEX_DTYPES = ("int64", "int64", "int32", "int8", "int16", "uint8", "uint32", "uint64")
PYTHON_FLOATS = (0.5, -2.5, 3.0, 1e-3, 0.0)  # values of the program's float parameter (program.OTHER_SCALAR)
MAX_ELEMENTS = 20000  # values larger than this are dropped: the programs stay quick to run and to print


# ----------------------------------------------------------------------------- inputs


@st.composite
def full_shapes(draw, max_ndim: int = 4) -> tuple[int, ...]:
    """The broadcast shape the inputs share; dims of 0 and 1 come up on purpose."""
    ndim = draw(st.integers(0, max_ndim))
    dims = tuple(draw(st.sampled_from((2, 3, 1, 4, 5, 0, 1, 2, 7))) for _ in range(ndim))
    if math.prod(dims) > 256:
        dims = tuple(min(d, 2) for d in dims)
    if dims and draw(st.integers(0, 9)) == 9:  # now and then long rows: grid-stride loops, many-block reductions
        at = draw(st.integers(0, ndim - 1))  # (17000: a row reduced over 2 blocks, layout.row_splits)
        dims = dims[:at] + (draw(st.sampled_from((33, 257, 1000, 3000, 17000))),) + dims[at + 1:]
        if math.prod(dims) > 6000:
            dims = tuple(d if i == at else min(d, 1) for i, d in enumerate(dims))
    return dims


@st.composite
def array_inputs(draw, max_inputs: int = 4) -> tuple[ArrayInput, ...]:
    full = draw(full_shapes())
    specs = []
    for _ in range(draw(st.integers(1, max_inputs))):
        keep = draw(st.integers(0, len(full)))
        shape = tuple(1 if draw(st.integers(0, 5)) == 5 else d for d in full[len(full) - keep:])
        specs.append(ArrayInput(dtype=draw(st.sampled_from(DTYPES)), shape=shape,
                                layout=draw(st.sampled_from(LAYOUTS)), values=draw(st.sampled_from(VALUE_KINDS)),
                                seed=draw(st.integers(0, 2 ** 16))))
    sizes = [d for d in full if d > 0]
    while sizes and len(specs) < max_inputs + 2 and draw(st.integers(0, 2)) == 0:
        specs.append(draw(index_inputs(sizes)))
    return tuple(specs)


@st.composite
def index_inputs(draw, sizes: list[int]) -> ArrayInput:
    """An integer array of indices into an axis of one of ``sizes``: in range for every run (other values, other
    shapes), negative ones too (``index``, repeats allowed), or distinct and not negative (``unique``)."""
    bound = draw(st.sampled_from(sizes))
    kind = draw(st.sampled_from(("index", "index", "unique")))
    dtype = draw(st.sampled_from(INDEX_DTYPES))
    if kind == "unique":
        layout = draw(st.sampled_from(("contiguous", "reversed")))  # (a strided one would draw more than bound)
        count = draw(st.integers(0, min(bound, 5)))
        return ArrayInput(dtype, (count,), layout, "unique", draw(st.integers(0, 2 ** 16)), bound)
    shape = draw(st.sampled_from(((3,), (1,), (0,), (5,), (2, 3), ())))
    return ArrayInput(dtype, shape, draw(st.sampled_from(LAYOUTS)), "index", draw(st.integers(0, 2 ** 16)), bound)


# ----------------------------------------------------------------------------- operations


@dataclass
class Context:
    """The program drawn so far, with every value computed by NumPy."""
    inputs: tuple[ArrayInput, ...]
    evaluator: Evaluator
    ops: list[Op]
    scalar: float | None = None

    def index_inputs(self, accept=lambda spec: True) -> list[int]:
        return [i for i, spec in enumerate(self.inputs) if spec.values in ("index", "unique") and accept(spec)]

    def arrays(self) -> list[np.ndarray]:
        return [np.asarray(v) for v in self.evaluator.values]


def pick(draw, ctx: Context, accept=lambda a: True) -> Ref | None:
    """An earlier value satisfying ``accept``; shrinks towards the most recent one."""
    arrays = ctx.arrays()
    candidates = [i for i in reversed(range(len(arrays))) if accept(arrays[i])]
    if not candidates:
        return None
    return Ref(candidates[draw(st.integers(0, len(candidates) - 1))])


def operand(draw, ctx: Context) -> object:
    """An array value mostly, a Python or NumPy scalar sometimes."""
    choice = draw(st.integers(0, 9))
    if choice == 8:
        if ctx.scalar is not None and draw(st.booleans()):
            return Param()
        return draw(st.sampled_from(SCALARS))
    if choice == 9:
        return draw(st.sampled_from(NUMPY_SCALARS))
    return pick(draw, ctx)


def axis_argument(draw, ndim: int, single: bool = False):
    """None, an int or a tuple of distinct axes (negative ones too)."""
    kind = draw(st.integers(0, 2 if not single else 1))
    if kind == 0 or ndim == 0:
        return None
    if kind == 1:
        return draw(st.integers(-ndim, ndim - 1))
    axes = draw(st.lists(st.integers(0, ndim - 1), min_size=1, max_size=ndim, unique=True))
    return tuple(a - ndim if draw(st.booleans()) else a for a in axes)


def draw_unary(draw, ctx):
    name = draw(st.sampled_from(UNARY))
    a = pick(draw, ctx)
    if name in UNARY_OPERATORS and draw(st.booleans()):
        form, symbol = UNARY_OPERATORS[name]
        return [Op(form, symbol, (a,))]
    return [Op("call", name, (a,))]


def draw_binary(draw, ctx):
    name = draw(st.sampled_from(BINARY))
    a, b = pick(draw, ctx), operand(draw, ctx)
    if draw(st.booleans()):
        a, b = b, a
    if not isinstance(a, Ref) and not isinstance(b, Ref):
        a = pick(draw, ctx)
    if name in BINARY_OPERATORS and draw(st.booleans()):
        return [Op("binop", BINARY_OPERATORS[name], (a, b))]
    return [Op("call", name, (a, b))]


def draw_where(draw, ctx):
    condition = pick(draw, ctx, lambda v: v.dtype == bool) if draw(st.integers(0, 3)) else None
    return [Op("call", "where", (condition or pick(draw, ctx), operand(draw, ctx), operand(draw, ctx)))]


def draw_clip(draw, ctx):
    lo = draw(st.one_of(st.none(), st.sampled_from(SCALARS), st.just("array")))
    hi = draw(st.one_of(st.none(), st.sampled_from(SCALARS), st.just("array")))
    lo, hi = (pick(draw, ctx) if bound == "array" else bound for bound in (lo, hi))
    if lo is None and hi is None:
        hi = 1
    return [Op("call", "clip", (pick(draw, ctx), lo, hi))]


def draw_astype(draw, ctx):
    target = DType(draw(st.sampled_from(ALL_DTYPES)))
    a = pick(draw, ctx)
    if draw(st.integers(0, 3)) == 0:
        return [Op("call", "astype", (a, target))]
    return [Op("method", "astype", (a, target))]


# NumPy's parameters of each reduction after the array, in order (the positional form passes them so)
REDUCTION_PARAMETERS = {"sum": ("axis", "dtype", "out", "keepdims", "initial"),
                        "prod": ("axis", "dtype", "out", "keepdims", "initial"),
                        "mean": ("axis", "dtype", "out", "keepdims"), "var": ("axis", "dtype", "out", "ddof", "keepdims"),
                        "std": ("axis", "dtype", "out", "ddof", "keepdims"),
                        "max": ("axis", "out", "keepdims", "initial"), "min": ("axis", "out", "keepdims", "initial"),
                        "any": ("axis", "out", "keepdims"), "all": ("axis", "out", "keepdims"),
                        "argmax": ("axis", "out"), "argmin": ("axis", "out")}


def draw_reduction(draw, ctx):
    name = draw(st.sampled_from(REDUCTIONS))
    a = pick(draw, ctx)
    ndim = ctx.arrays()[a.index].ndim
    kwargs = {}
    axis = axis_argument(draw, ndim, single=name in ("argmax", "argmin"))
    if axis is not None:
        kwargs["axis"] = axis
    if draw(st.booleans()):
        kwargs["keepdims"] = True
    if name in ("var", "std") and draw(st.integers(0, 3)) == 0:
        kwargs["ddof"] = 1
    if name in ("sum", "prod", "mean") and draw(st.integers(0, 5)) == 0:
        kwargs["dtype"] = DType(draw(st.sampled_from(("float64", "float32", "int64"))))
    if name in ("max", "min", "sum", "prod") and draw(st.integers(0, 3)) == 0:
        kwargs["initial"] = draw(st.sampled_from((0, -2, 1.5, True, 300)))
    form = "method" if draw(st.booleans()) else "call"
    parameters = REDUCTION_PARAMETERS[name]
    if draw(st.integers(0, 3)) == 0 and "keepdims" in parameters:  # positional: np.var(x, 0, None, None, 1)
        count = max(parameters.index(k) + 1 for k in kwargs) if kwargs else 0
        positional = tuple(kwargs.pop(k, False if k == "keepdims" else 0 if k == "ddof" else None)
                           for k in parameters[:count])
        return [Op(form, name, (a, *positional), tuple(kwargs.items()))]
    return [Op(form, name, (a,), tuple(kwargs.items()))]


def draw_einsum(draw, ctx):
    """np.einsum of one or two operands: labels shared where sizes agree, some summed out, the output's in any
    order, or NumPy's implicit output."""
    arrays = ctx.arrays()
    a = pick(draw, ctx, lambda v: v.ndim <= 3)
    if a is None:
        return []
    letters = iter("ijklmn")
    terms, sizes = [[next(letters) for _ in arrays[a.index].shape]], dict()
    sizes.update(zip(terms[0], arrays[a.index].shape))
    operands = [a]
    b = pick(draw, ctx, lambda v: v.ndim <= 3) if draw(st.booleans()) else None
    if b is not None:
        term = []
        for size in arrays[b.index].shape:
            free = [label for label in terms[0] if sizes[label] == size and label not in term]
            term.append(draw(st.sampled_from(free)) if free and draw(st.integers(0, 2)) else next(letters))
            sizes.setdefault(term[-1], size)
        terms.append(term)
        operands.append(b)
    labels = list(dict.fromkeys(terms[0] + (terms[1] if b is not None else [])))
    subscripts = ",".join("".join(term) for term in terms)
    if draw(st.integers(0, 3)):
        output = draw(st.permutations(labels))[:draw(st.integers(0, len(labels)))]
        subscripts += "->" + "".join(output)
    return [Op("call", "einsum", (subscripts, *operands))]


def draw_scan(draw, ctx):
    """np.cumsum / np.cumprod (function or method) over one axis or the flattened array, np.nancumsum, or
    np.diff (n times, with a scalar or an array prepended)."""
    a = pick(draw, ctx)
    ndim = ctx.arrays()[a.index].ndim
    name = draw(st.sampled_from(("cumsum", "cumprod", "nancumsum", "diff")))
    axis = draw(st.integers(-max(ndim, 1), max(ndim, 1) - 1))
    if name == "diff":
        kwargs = [("n", draw(st.integers(0, 2))), ("axis", axis)]
        if draw(st.booleans()):
            kwargs.append(("prepend", draw(st.sampled_from((0, 1.5, -2)))))
        return [Op("call", "diff", (a,), tuple(kwargs))]
    kwargs = (("axis", axis),) if draw(st.booleans()) else ()
    form = "method" if name != "nancumsum" and draw(st.booleans()) else "call"
    return [Op(form, name, (a,), kwargs)]


def draw_nan_reduction(draw, ctx):
    """The NaN-ignoring reductions and np.ptp over an axis or all, kept or not."""
    a = pick(draw, ctx)
    ndim = ctx.arrays()[a.index].ndim
    kwargs = []
    axis = axis_argument(draw, ndim, single=True)
    if axis is not None:
        kwargs.append(("axis", axis))
    if draw(st.booleans()):
        kwargs.append(("keepdims", True))
    name = draw(st.sampled_from(("nansum", "nanprod", "nanmax", "nanmin", "nanmean", "ptp")))
    return [Op("call", name, (a,), tuple(kwargs))]


def draw_norm(draw, ctx):
    """np.linalg.norm over one axis (vector orders), two (matrix orders) or all; np.outer now and then."""
    a = pick(draw, ctx, lambda v: v.ndim >= 1)
    if a is None:
        return []
    if draw(st.integers(0, 3)) == 0:
        return [Op("call", "outer", (a, pick(draw, ctx)))]
    ndim = ctx.arrays()[a.index].ndim
    kind = draw(st.sampled_from(("vector", "matrix", "all") if ndim >= 2 else ("vector", "all")))
    kwargs = []
    if kind == "vector":
        kwargs += [("ord", draw(st.sampled_from((None, 1, 2, math.inf, -math.inf)))),
                   ("axis", draw(st.integers(-ndim, ndim - 1)))]
    elif kind == "matrix":
        axes = draw(st.lists(st.integers(0, ndim - 1), min_size=2, max_size=2, unique=True))
        kwargs += [("ord", draw(st.sampled_from((None, "fro", 1, -1, math.inf, -math.inf)))),
                   ("axis", tuple(x - ndim if draw(st.booleans()) else x for x in axes))]
    if draw(st.booleans()):
        kwargs.append(("keepdims", True))
    return [Op("call", "linalg.norm", (a,), tuple(kwargs))]


def draw_transpose(draw, ctx):
    a = pick(draw, ctx)
    ndim = ctx.arrays()[a.index].ndim
    kind = draw(st.integers(0, 3))
    if kind == 0:
        return [Op("attr", "T", (a,))]
    if kind == 1 or ndim < 2:
        perm = tuple(draw(st.permutations(range(ndim))))
        return [Op("call", "transpose", (a, perm) if draw(st.booleans()) or ndim == 0 else (a,))]
    i, j = draw(st.integers(-ndim, ndim - 1)), draw(st.integers(-ndim, ndim - 1))
    return [Op("call", "swapaxes" if kind == 2 else "moveaxis", (a, i, j))]


def draw_index(draw, ctx):
    a = pick(draw, ctx)
    shape = ctx.arrays()[a.index].shape
    items, ellipsis = [], False
    for n in shape[:draw(st.integers(0, len(shape)))]:
        kind = draw(st.integers(0, 5))
        if kind == 0 and n > 0:
            items.append(draw(st.integers(-n, n - 1)))
        elif kind == 1:
            items.append(None)
            items.append((None, None, None))
        elif kind == 2 and not ellipsis:
            items.append(Ellipsis)
            ellipsis = True
            break
        else:
            bound = st.one_of(st.none(), st.integers(-n - 1, n + 1))
            step = draw(st.sampled_from((None, 1, 2, -1, -2, 3)))
            items.append((draw(bound), draw(bound), step))
    return [Op("index", "getitem", (a, Index(tuple(items))))]


def draw_expand_dims(draw, ctx):
    a = pick(draw, ctx)
    ndim = ctx.arrays()[a.index].ndim
    return [Op("call", "expand_dims", (a, draw(st.integers(-ndim - 1, ndim))))]


def draw_squeeze(draw, ctx):
    a = pick(draw, ctx)
    shape = ctx.arrays()[a.index].shape
    ones = [i for i, n in enumerate(shape) if n == 1]
    if ones and draw(st.booleans()):
        return [Op("call", "squeeze", (a,), (("axis", draw(st.sampled_from(ones))),))]
    return [Op("method" if draw(st.booleans()) else "call", "squeeze", (a,))]


def draw_broadcast_to(draw, ctx):
    a = pick(draw, ctx)
    shape = ctx.arrays()[a.index].shape
    lead = tuple(draw(st.sampled_from((1, 2, 3))) for _ in range(draw(st.integers(0, 2))))
    target = lead + tuple(draw(st.sampled_from((1, 2, 3))) if n == 1 else n for n in shape)
    return [Op("call", "broadcast_to", (a, target))]


def _factor_shape(draw, size: int) -> tuple[int, ...]:
    if size == 0:
        return draw(st.sampled_from(((0,), (0, 2), (3, 0), (1, 0, 1))))
    factors = [p for p in range(2, size + 1) for _ in range(_multiplicity(size, p))]
    ndim = draw(st.integers(1, 4))
    dims = [1] * ndim
    for f in factors:
        dims[draw(st.integers(0, ndim - 1))] *= f
    if draw(st.booleans()):
        dims[draw(st.integers(0, ndim - 1))] = -1
    return tuple(dims)


def _multiplicity(n: int, p: int) -> int:
    if any(p % q == 0 for q in range(2, p)):
        return 0
    count = 0
    while n % p == 0:
        n //= p
        count += 1
    return count


def draw_reshape(draw, ctx):
    a = pick(draw, ctx)
    size = ctx.arrays()[a.index].size
    if size > 512:
        return []
    target = _factor_shape(draw, size)
    if draw(st.booleans()):
        return [Op("method", "reshape", (a, target))]
    return [Op("call", "reshape", (a, target))]


def draw_ravel(draw, ctx):
    a = pick(draw, ctx)
    return [Op(*draw(st.sampled_from((("call", "ravel"), ("method", "ravel"), ("method", "flatten")))), (a,))]


def draw_matmul(draw, ctx):
    arrays = ctx.arrays()
    a = pick(draw, ctx, lambda v: v.ndim >= 1)
    if a is None:
        return []
    shape = arrays[a.index].shape

    def fits(v):
        return v.ndim >= 1 and (v.shape[0] if v.ndim == 1 else v.shape[-2]) == shape[-1]

    b = pick(draw, ctx, fits) if draw(st.booleans()) else None
    ops = []
    if b is None:  # a @ a.T always fits
        if len(shape) >= 2:
            ops.append(Op("call", "swapaxes", (a, -1, -2)))
            b = Ref(len(arrays))
        else:
            b = a
    form = draw(st.integers(0, 2))
    if form == 0:
        ops.append(Op("binop", "@", (a, b)))
    elif form == 1 or max(len(shape), arrays[b.index].ndim if b.index < len(arrays) else 2) > 2:
        ops.append(Op("call", "matmul", (a, b)))
    else:
        ops.append(Op("call", "dot", (a, b)))
    return ops


def draw_concatenate(draw, ctx):
    arrays = ctx.arrays()
    a = pick(draw, ctx, lambda v: v.ndim >= 1)
    if a is None:
        return []
    first = arrays[a.index]
    axis = draw(st.integers(-first.ndim, first.ndim - 1))
    k = axis % first.ndim
    fits = lambda v: v.ndim == first.ndim and all(m == n for i, (m, n) in enumerate(zip(v.shape, first.shape))
                                                  if i != k)
    parts = [a] + [pick(draw, ctx, fits) for _ in range(draw(st.integers(1, 2)))]
    return [Op("list_call", "concatenate", tuple(parts), (("axis", axis),))]


def draw_stack(draw, ctx):
    arrays = ctx.arrays()
    a = pick(draw, ctx)
    first = arrays[a.index]
    parts = [a] + [pick(draw, ctx, lambda v: v.shape == first.shape) for _ in range(draw(st.integers(1, 2)))]
    return [Op("list_call", "stack", tuple(parts), (("axis", draw(st.integers(-first.ndim - 1, first.ndim))),))]


def draw_fill(draw, ctx):
    a = pick(draw, ctx)
    kind = draw(st.sampled_from(("zeros_like", "ones_like", "full_like", "copy", "copy_method")))
    if kind == "copy_method":
        return [Op("method", "copy", (a,))]
    if kind == "copy":
        return [Op("call", "copy", (a,))]
    dtype = (("dtype", DType(draw(st.sampled_from(ALL_DTYPES)))),) if draw(st.booleans()) else ()
    if kind == "full_like":
        return [Op("call", kind, (a, draw(st.sampled_from(SCALARS))), dtype)]
    return [Op("call", kind, (a,), dtype)]


def draw_idiom(draw, ctx):
    """Reduction idioms of real programs: softmax, logsumexp, layer norm, a mean-centred sum of squares."""
    a = pick(draw, ctx, lambda v: v.ndim >= 1 and v.dtype.kind == "f")
    if a is None:
        return []
    ndim = ctx.arrays()[a.index].ndim
    axis = draw(st.integers(-ndim, ndim - 1))
    keep = (("axis", axis), ("keepdims", True))
    n = len(ctx.arrays())
    r = lambda k: Ref(n + k)  # the k-th value this idiom adds
    idiom = draw(st.sampled_from(("softmax", "logsumexp", "layernorm", "centred")))
    if idiom == "softmax":
        return [Op("method", "max", (a,), keep), Op("binop", "-", (a, r(0))), Op("call", "exp", (r(1),)),
                Op("method", "sum", (r(2),), keep), Op("binop", "/", (r(2), r(3)))]
    if idiom == "logsumexp":
        return [Op("call", "max", (a,), keep), Op("call", "subtract", (a, r(0))), Op("call", "exp", (r(1),)),
                Op("call", "sum", (r(2),), keep), Op("call", "log", (r(3),)), Op("binop", "+", (r(4), r(0)))]
    if idiom == "layernorm":
        return [Op("method", "mean", (a,), keep), Op("binop", "-", (a, r(0))), Op("binop", "*", (r(1), r(1))),
                Op("method", "mean", (r(2),), keep), Op("binop", "+", (r(3), 1e-5)), Op("call", "sqrt", (r(4),)),
                Op("binop", "/", (r(1), r(5)))]
    return [Op("method", "mean", (a,), keep), Op("binop", "-", (a, r(0))), Op("call", "square", (r(1),)),
            Op("method", "sum", (r(2),), (("axis", axis),))]


def _index_input(draw, ctx: Context, accept=lambda spec: True) -> int | None:
    found = ctx.index_inputs(accept)
    return draw(st.sampled_from(found)) if found else None


def _int_list(draw, n: int, length: int | None = None) -> IntList:
    """Literal indices in range for an axis of ``n`` and of its other size (program.OTHER_SIZE): a constant list
    out of range there raises IndexError only where the gather is used (test_regressions.py KNOWN_FAILURES)."""
    n = min(n, OTHER_SIZE.get(n, n))
    length = draw(st.integers(1, 4)) if length is None else length
    return IntList(tuple(draw(st.integers(-n, n - 1)) for _ in range(length)))


def draw_gather(draw, ctx):
    """Indexing with integer arrays: an index input (in range on every run) or a literal list along one axis, two
    aligned index arrays (``probs[np.arange(n), y]``), np.take, np.take_along_axis with argsort/argmax indices."""
    arrays = ctx.arrays()
    kind = draw(st.sampled_from(("axis", "axis", "list", "pair", "take", "along")))
    whole = (None, None, None)
    if kind in ("axis", "take"):
        i = _index_input(draw, ctx)
        if i is None:
            return []
        bound = ctx.inputs[i].bound
        if kind == "take" and draw(st.integers(0, 3)) == 0:
            x = pick(draw, ctx, lambda v: v.size >= bound)
            return [] if x is None else [Op("call", "take", (x, Ref(i)))]
        x = pick(draw, ctx, lambda v: any(n >= bound for n in v.shape))
        if x is None:
            return []
        shape = arrays[x.index].shape
        axis = draw(st.sampled_from([k for k, n in enumerate(shape) if n >= bound]))
        if kind == "take":
            return [Op("call" if draw(st.booleans()) else "method", "take", (x, Ref(i)),
                       (("axis", axis - len(shape) if draw(st.booleans()) else axis),))]
        return [Op("index", "getitem", (x, Index((whole,) * axis + (Ref(i),))))]
    # literal lists and np.arange index inputs only, whose other size (program.OTHER_SIZE) is known: a constant
    # out of range on another shape raises IndexError only where the gather is used (test_regressions.py)
    inputs = range(len(ctx.inputs))
    if kind == "list":
        x = pick(draw, ctx, lambda v: v.ndim >= 1 and v.size > 0 and any(v is a for a in arrays[:len(inputs)]))
        if x is None:
            return []
        shape = arrays[x.index].shape
        axis = draw(st.integers(0, len(shape) - 1))
        if shape[axis] == 0:
            return []
        return [Op("index", "getitem", (x, Index((whole,) * axis + (_int_list(draw, shape[axis]),))))]
    if kind == "pair":
        x = pick(draw, ctx, lambda v: v.ndim >= 2 and v.shape[0] > 0 and v.shape[1] > 0
                 and any(v is a for a in arrays[:len(inputs)]))
        if x is None:
            return []
        rows, columns = arrays[x.index].shape[:2]
        i = _index_input(draw, ctx, lambda spec: spec.bound <= columns and len(spec.shape) == 1
                         and spec.shape[0] <= min(rows, OTHER_SIZE.get(rows, rows)))  # np.arange(k) a constant
        if i is not None and draw(st.booleans()):  # probs[np.arange(n), y]
            return [Op("index", "getitem", (x, Index((Arange(ctx.inputs[i].shape[0]), Ref(i)))))]
        length = draw(st.integers(1, 4))
        return [Op("index", "getitem", (x, Index((_int_list(draw, rows, length), _int_list(draw, columns, length)))))]
    x = pick(draw, ctx, lambda v: v.ndim >= 1)
    if x is None:
        return []
    ndim = arrays[x.index].ndim
    axis = draw(st.integers(-ndim, ndim - 1))
    n = len(arrays)
    source = pick(draw, ctx, lambda v: v.shape == arrays[x.index].shape) if draw(st.booleans()) else x
    if draw(st.booleans()):
        first = Op("call", "argsort", (x,), (("axis", axis), ("kind", "stable")))
    else:
        first = Op("call", draw(st.sampled_from(("argmax", "argmin"))), (x,), (("axis", axis), ("keepdims", True)))
    return [first, Op("call", "take_along_axis", (source, Ref(n)), (("axis", axis),))]


def _selection_shape(array: np.ndarray, index: Index, arrays: list[np.ndarray]) -> tuple[int, ...] | None:
    """The shape ``array[index]`` has (None where NumPy rejects the index)."""
    items = []
    for item in index.items:
        if isinstance(item, Ref):
            items.append(arrays[item.index])
        elif isinstance(item, IntList):
            items.append(list(item.values))
        elif isinstance(item, Arange):
            items.append(np.arange(item.n))
        elif isinstance(item, tuple):
            items.append(slice(*item))
        elif isinstance(item, SelfMask):
            return None
        else:
            items.append(item)
    try:
        return array[tuple(items)].shape
    except Exception:
        return None


def _assigned_value(draw, ctx: Context, selected: tuple[int, ...] | None, scalar_only: bool, exact_only: bool):
    """A scalar, the float parameter, or an earlier value that broadcasts to the ``selected`` shape."""
    if not scalar_only and selected is not None and draw(st.integers(0, 2)):
        def fits(v):
            try:
                return np.broadcast_shapes(v.shape, selected) == selected
            except ValueError:
                return False
        exactness = ctx.evaluator.exactness
        ref = pick(draw, ctx, fits)
        if ref is not None and (not exact_only or exactness[ref.index] == EXACT):
            return ref
    if ctx.scalar is not None and not exact_only and draw(st.integers(0, 3)) == 0:
        return Param()
    return draw(st.sampled_from(SCALARS + NUMPY_SCALARS[:3]))


def draw_assign(draw, ctx, inplace: bool = False):
    """An assignment into a copy of an earlier value (``y = x.copy(); y[idx] = v``; ``inplace``: into an input,
    which the caller sees updated): integer-array, list, slice and mask indices, ``=``, ``+=``, ``-=``, ``*=``,
    np.add.at with repeated indices, and ``y[y > 0] = f(y[y > 0])``."""
    arrays = ctx.arrays()
    if inplace:  # not an index input (its values must stay in range), nor one with a reshaped view (refused:
        # whether NumPy's reshape is a view depends on the caller's layout; README "What is traced")
        reshaped = [arrays[len(ctx.inputs) + k] for k, op in enumerate(ctx.ops) if op.name in ("reshape", "ravel")]
        candidates = [i for i in range(len(ctx.inputs)) if ctx.inputs[i].values not in ("index", "unique")
                      and arrays[i].ndim >= 1 and not any(np.may_share_memory(v, arrays[i]) for v in reshaped)]
        if not candidates:
            return []
        target = Ref(draw(st.sampled_from(candidates)))
        style = "inplace"
    else:
        target = pick(draw, ctx, lambda v: v.ndim >= 1)
        if target is None:
            return []
        style = draw(st.sampled_from(("method", "call", "mul")))
    x = arrays[target.index]
    kind = draw(st.sampled_from(("array", "array", "list", "slice", "slice", "mask", "whole")))
    whole = (None, None, None)
    repeats = True  # whether the index may name an element twice
    if kind == "array":
        i = _index_input(draw, ctx, lambda spec: any(n >= spec.bound for n in x.shape))
        if i is None:
            return []
        spec = ctx.inputs[i]
        axis = draw(st.sampled_from([k for k, n in enumerate(x.shape) if n >= spec.bound]))
        index, repeats = Index((whole,) * axis + (Ref(i),)), spec.values != "unique"
    elif kind == "list":
        if x.shape[0] == 0 or target.index >= len(ctx.inputs):  # (a literal list: into an input's copy only)
            return []
        values = _int_list(draw, x.shape[0])
        index = Index((values,))
        repeats = len({v % x.shape[0] for v in values.values}) < len(values.values)
    elif kind == "slice":
        items = []
        for n in x.shape[:draw(st.integers(1, x.ndim))]:
            if n > 0 and draw(st.integers(0, 3)) == 0:
                items.append(draw(st.integers(-n, n - 1)))
            else:
                bound = st.one_of(st.none(), st.integers(-n - 1, n + 1))
                items.append((draw(bound), draw(bound), draw(st.sampled_from((None, 1, 2, -1, -2)))))
        index, repeats = Index(tuple(items)), False
    elif kind == "mask":
        index = Index((SelfMask(draw(st.sampled_from((">", "<", "!=", ">="))), draw(st.sampled_from((0, 1, 0.5)))),))
        if draw(st.integers(0, 2)) == 0:
            value = draw(st.sampled_from((("*", 2), ("-", 1), ("**", 2), "sqrt", "exp", "negative", "abs")))
            if inplace and value in ("exp", ("**", 2)):
                value = ("*", 2)
            return [Op("assign", "mask_apply", (target, index, value), (("copy", style),))]
    else:
        index, repeats = Index((Ellipsis,)), False
    if kind in ("array", "list") and draw(st.integers(0, 3)) == 0:
        operator = "add.at"
    else:
        operator = draw(st.sampled_from(("=", "=", "=", "+=", "-=", "*=")))
    if operator == "add.at":
        if inplace and x.dtype.kind == "f":
            operator = "="  # np.add.at sums floats in an order of its own: an input is compared exactly
        else:
            selected = _selection_shape(x, Index(index.items[-1:]), arrays) if len(index.items) == 1 else None
            value = _assigned_value(draw, ctx, selected, False, inplace)
            return [Op("assign", "add.at", (target, Index(index.items[-1:]), value), (("copy", style),))]
    selected = None if kind == "mask" else _selection_shape(x, index, arrays)
    value = _assigned_value(draw, ctx, selected, scalar_only=repeats or kind == "mask", exact_only=inplace)
    if selected == () and operator != "=" and not _updates_in_place(x.dtype, operator, value, ctx):
        operator = "="  # x[i] -= 2.5 on integers: NumPy's x[i] is a scalar, updated out of place (tests/fuzz/
        # test_regressions.py: augmented_assignment_of_one_element_casts)
    return [Op("assign", operator, (target, index, value), (("copy", style),))]


def _updates_in_place(dtype: np.dtype, operator: str, value, ctx: Context) -> bool:
    """Whether ``y[s] <operator> value`` on a one-element slice of ``dtype`` works in place (same-kind casting)."""
    arrays = ctx.arrays()
    operand = arrays[value.index] if isinstance(value, Ref) else ctx.scalar if isinstance(value, Param) else \
        value.numpy() if isinstance(value, NumpyScalar) else value
    probe = np.zeros(1, dtype)
    try:
        with np.errstate(all="ignore"):
            exec(f"probe[:] {operator} operand", {"probe": probe, "operand": operand})
    except Exception:
        return False
    return True


def draw_inplace(draw, ctx):
    return draw_assign(draw, ctx, inplace=True)


def draw_array_function(draw, ctx):
    """The array functions: roll, pad, hstack, vstack, column_stack, repeat, tile, flip, tril, triu, sort,
    argsort (stable: ties)."""
    name = draw(st.sampled_from(("roll", "pad", "pad", "hstack", "vstack", "column_stack", "repeat", "tile", "flip",
                                 "tril", "triu", "sort", "argsort")))
    x = pick(draw, ctx)
    a = ctx.arrays()[x.index]
    axis = draw(st.integers(-a.ndim, a.ndim - 1)) if a.ndim else None
    if name == "roll":
        if a.ndim >= 2 and draw(st.booleans()):
            axes = tuple(draw(st.lists(st.integers(0, a.ndim - 1), min_size=2, max_size=2, unique=True)))
            return [Op("call", "roll", (x, tuple(draw(st.integers(-4, 4)) for _ in axes)), (("axis", axes),))]
        kwargs = (("axis", axis),) if axis is not None and draw(st.booleans()) else ()
        return [Op("call", "roll", (x, draw(st.integers(-5, 5))), kwargs)]
    if name == "pad":
        mode = draw(st.sampled_from(("constant", "edge", "wrap", "reflect", "symmetric")))
        if a.ndim and draw(st.booleans()):
            width = tuple((draw(st.integers(0, 2)), draw(st.integers(0, 2))) for _ in range(a.ndim))
        else:
            width = draw(st.integers(0, 2))
        kwargs = [("mode", mode)] if mode != "constant" or draw(st.booleans()) else []
        if mode == "constant" and draw(st.booleans()):
            kwargs.append(("constant_values", draw(st.sampled_from((0, 1, -2.5, 7)))))
        return [Op("call", "pad", (x, width), tuple(kwargs))]
    if name in ("hstack", "vstack", "column_stack"):
        join = {"hstack": 1 if a.ndim > 1 else 0, "vstack": 0, "column_stack": 1}[name]

        def fits(v):
            if name == "hstack" and a.ndim <= 1 or name != "hstack" and a.ndim <= 1 and v.ndim <= 1:
                return v.ndim == a.ndim and (name == "hstack" or v.shape == a.shape)
            return v.ndim == a.ndim and all(m == n for k, (m, n) in enumerate(zip(v.shape, a.shape)) if k != join)
        parts = [x] + [pick(draw, ctx, fits) for _ in range(draw(st.integers(0, 2)))]
        return [Op("list_call", name, tuple(parts))]
    if name == "repeat":
        if axis is not None and draw(st.booleans()) and a.shape[axis] <= 6:
            counts = IntList(tuple(draw(st.integers(0, 3)) for _ in range(a.shape[axis])))
            return [Op("call", "repeat", (x, counts), (("axis", axis),))]
        kwargs = (("axis", axis),) if axis is not None and draw(st.booleans()) else ()
        return [Op("method" if draw(st.booleans()) else "call", "repeat", (x, draw(st.integers(0, 3))), kwargs)]
    if name == "tile":
        reps = draw(st.one_of(st.integers(0, 3), st.tuples(st.integers(1, 3), st.integers(0, 2)),
                              st.tuples(st.integers(1, 2), st.integers(1, 2), st.integers(1, 2))))
        return [Op("call", "tile", (x, reps))]
    if name == "flip":
        kwargs = (("axis", axis),) if axis is not None and draw(st.booleans()) else ()
        return [Op("call", "flip", (x,), kwargs)]
    if name in ("tril", "triu"):
        kwargs = (("k", draw(st.integers(-2, 2))),) if draw(st.booleans()) else ()
        return [Op("call", name, (x,), kwargs)]
    if name == "sort":
        if draw(st.integers(0, 3)) == 0:
            return [Op("call", "sort", (x,), (("axis", None),))]
        return [Op("call", "sort", (x,), (("axis", axis),) if axis is not None else ())]
    kwargs = (("axis", axis),) if axis is not None else (("axis", None),)
    return [Op("call", "argsort", (x,), kwargs + (("kind", "stable"),))]


DRAWERS = {"unary": draw_unary, "binary": draw_binary, "where": draw_where, "clip": draw_clip,
           "astype": draw_astype, "reduction": draw_reduction, "transpose": draw_transpose, "index": draw_index,
           "expand_dims": draw_expand_dims, "squeeze": draw_squeeze, "broadcast_to": draw_broadcast_to,
           "reshape": draw_reshape, "ravel": draw_ravel, "matmul": draw_matmul, "concatenate": draw_concatenate,
           "stack": draw_stack, "fill": draw_fill, "idiom": draw_idiom, "norm": draw_norm, "einsum": draw_einsum,
           "scan": draw_scan, "nan_reduction": draw_nan_reduction, "gather": draw_gather, "assign": draw_assign,
           "inplace": draw_inplace, "array_function": draw_array_function}


def names_for(n_inputs: int, n_ops: int) -> list[str]:
    return [f"x{i}" for i in range(n_inputs)] + [f"v{k}" for k in range(n_ops)]


@st.composite
def programs(draw, max_ops: int = 40, max_inputs: int = 4, error_share: int = 25,
             families: tuple[str, ...] = FAMILIES) -> Program:
    """A random program; about one in ``error_share`` operations NumPy rejects ends it (0: never)."""
    inputs = draw(array_inputs(max_inputs))
    arrays = tuple(build_input(spec) for spec in inputs)
    target = draw(st.integers(1, max_ops))
    signature = draw(st.sampled_from(("flat", "flat", "flat", "dict", "nested")))
    scalar = draw(st.sampled_from(PYTHON_FLOATS)) if draw(st.integers(0, 3)) == 0 else None
    ctx = Context(inputs, Evaluator(arrays, names_for(len(inputs), 3 * max_ops + 2), scalar), [], scalar)
    failed = False
    for _ in range(3 * target):
        if len(ctx.ops) >= target:
            break
        ops = DRAWERS[draw(st.sampled_from(families))](draw, ctx)
        if not ops or any(a is None for op in ops if op.name != "clip" for a in op.args):
            continue
        failed = _append(draw, ctx, ops, error_share)
        if failed:
            break
    if not ctx.ops:
        ctx.ops.append(Op("call", "positive" if arrays[0].dtype != bool else "logical_not", (Ref(0),)))
    return Program(inputs, tuple(ctx.ops), _outputs(draw, len(inputs), ctx.ops, failed), signature, scalar)


def _outputs(draw, n_inputs: int, ops: list[Op], failed: bool) -> tuple[int, ...]:
    """The last value, and most values nothing else uses (so few operations are dead code)."""
    last = n_inputs + len(ops) - 1
    if failed:
        return (last,)
    used = {i for op in ops for i in op.refs()}
    sinks = [i for i in range(n_inputs, last) if i not in used]
    kept = [i for i in sinks if draw(st.integers(0, 5))][:5]
    extra = draw(st.lists(st.integers(0, last), max_size=1))  # now and then an input or a used value too
    return tuple(dict.fromkeys([last] + kept + extra))


def _append(draw, ctx: Context, ops: list[Op], error_share: int) -> bool:
    """Run ``ops`` with NumPy and keep them if they make sense; True if they end the program with an error."""
    evaluator = ctx.evaluator
    mark = len(evaluator.values)
    for op in ops:
        try:
            result = evaluator.step(op)
        except FuzzerError:
            raise
        except Exception:
            if error_share and draw(st.integers(0, error_share - 1)) == 0:
                ctx.ops.extend(ops[:ops.index(op) + 1])
                return True
            evaluator.truncate(mark)
            return False
        if evaluator.exactness[-1] == UNSTABLE or np.size(result) > MAX_ELEMENTS:
            evaluator.truncate(mark)
            return False
    ctx.ops.extend(ops)
    return False
