"""A fuzz program: input arrays and a list of NumPy operations, as plain data.

A :class:`Program` renders itself as standalone Python source (a ``program``
function and a ``make_inputs`` function that rebuilds the exact input arrays,
strides included), so every failure can be written out as a readable
reproducer. It also runs itself statement by statement with NumPy, which
gives every intermediate value: the differential runner needs them to know
which outputs are computed exactly and how large the values along the way
were (the scale of the tolerance).
"""
from __future__ import annotations

import dataclasses
import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

# -- how exactly a value can be reproduced by another correct implementation

EXACT = "exact"          # bit-for-bit (zero signs and NaN payloads aside)
INEXACT = "inexact"      # within a tolerance: libm transcendentals, reassociated sums, BLAS
UNSTABLE = "unstable"    # a discontinuous function of an inexact value: may legitimately differ anywhere

# elementwise functions whose float results come from the math library (a few ulp apart between libms)
TRANSCENDENTAL = frozenset(
    "exp exp2 expm1 log log2 log10 log1p cbrt sin cos tan arcsin arccos arctan sinh cosh tanh arcsinh arccosh "
    "arctanh arctan2 hypot logaddexp logaddexp2 power **".split())
# reductions and contractions whose float results depend on the order of summation
ACCUMULATING = frozenset("sum prod mean var std matmul @ dot linalg.norm einsum cumsum cumprod nancumsum nansum "
                         "nanprod nanmean".split())
# functions with jumps: a tiny change of a float operand can change the result completely
DISCONTINUOUS = frozenset(
    "equal not_equal less less_equal greater greater_equal == != < <= > >= floor ceil trunc rint round sign "
    "heaviside floor_divide remainder fmod // % isnan isinf isfinite signbit copysign logical_and logical_or "
    "logical_xor logical_not argmax argmin any all astype".split())

# functions defined on part of the real line (name -> edges of the domain of the first operand):
# an inexact operand near an edge may give NaN in one implementation and a number in another
DOMAIN_EDGES = {"log": (0,), "log2": (0,), "log10": (0,), "log1p": (-1,), "sqrt": (0,), "arcsin": (-1, 1),
                "arccos": (-1, 1), "arccosh": (1,), "arctanh": (-1, 1), "power": (0,), "**": (0,)}


@dataclass(frozen=True)
class Ref:
    """A reference to an earlier value of the program: an input or an operation's result."""
    index: int


@dataclass(frozen=True)
class NumpyScalar:
    """A NumPy scalar operand such as ``np.float32(2.5)``."""
    dtype: str
    value: Any

    def numpy(self) -> np.generic:
        return np.dtype(self.dtype).type(self.value)


class FuzzerError(RuntimeError):
    """A bug in the fuzzer itself (not NumPy rejecting a program, not a gputrace mismatch)."""


@dataclass(frozen=True)
class Index:
    """An indexing expression ``a[...]``: items are ints, slices (start, stop, step), None or Ellipsis."""
    items: tuple


@dataclass(frozen=True)
class IntList:
    """A literal list of ints used as an index (``x[[0, -1, 2]]``): a constant of the trace."""
    values: tuple[int, ...]


@dataclass(frozen=True)
class Arange:
    """``np.arange(n)`` as an index (``probs[np.arange(n), y]``)."""
    n: int


@dataclass(frozen=True)
class SelfMask:
    """A mask of the value being assigned to, by a comparison with a scalar: ``y[y > 0]``."""
    comparison: str
    threshold: Any


@dataclass(frozen=True)
class Param:
    """The program's Python float parameter ``s`` (a weakly typed 0-d input of the trace)."""


@dataclass(frozen=True)
class DType:
    """A dtype argument, rendered ``np.float32``."""
    name: str


@dataclass(frozen=True)
class Op:
    """One statement ``v<k> = <expression>``.

    form says how it is written: ``call`` np.name(args, **kwargs); ``method`` a.name(rest, **kwargs);
    ``binop`` a name b; ``unop`` name a; ``builtin`` name(a); ``index`` a[index]; ``attr`` a.name;
    ``list_call`` np.name([args], **kwargs); ``assign`` an assignment (see :func:`render_assignment`): name is
    ``=``, ``+=``, ``-=``, ``*=``, ``add.at`` or ``mask_apply``, args (target, Index, value), kwargs
    (("copy", how),) with how ``method`` (``y = x.copy()``), ``call`` (``np.copy(x)``), ``mul`` (``x * 1``) or
    ``inplace`` (the target, an input, is updated in place: the caller sees it after the call).
    """
    form: str
    name: str
    args: tuple
    kwargs: tuple = ()

    def refs(self) -> list[int]:
        found = [a.index for a in self.args if isinstance(a, Ref)]
        return found + [i.index for a in self.args if isinstance(a, Index) for i in a.items if isinstance(i, Ref)]

    @property
    def copy_style(self) -> str:
        return dict(self.kwargs).get("copy", "method")


@dataclass(frozen=True)
class ArrayInput:
    """An input array: its logical dtype and shape, its memory layout and how its values are drawn."""
    dtype: str
    shape: tuple[int, ...]
    layout: str = "contiguous"   # contiguous, transposed (a .T view), strided (every other element), reversed
    values: str = "normal"       # normal, special (NaN, inf, -0.0, ...), extreme (huge, tiny, integer limits);
                                 # index (integers in [-bound, bound), repeats allowed), unique (distinct modulo bound)
    seed: int = 0
    bound: int = 0               # for index values: the size of the axis they index


OTHER_SIZE = {2: 3, 3: 2, 4: 5, 5: 4, 7: 6, 33: 34, 257: 256, 1000: 999, 3000: 2999}  # for with_other_shapes
OTHER_SCALAR = {0.5: -2.0, -2.5: 0.75, 3.0: 1e-3, 1e-3: 3.0, 0.0: 1.5}  # a Python float parameter's other value
LITERAL_LIMIT = 64  # larger inputs are written as the draw_values call that makes them
LAYOUTS = ("contiguous", "transposed", "strided", "reversed")
VALUE_KINDS = ("normal", "special", "extreme")


# ----------------------------------------------------------------------------- input values


def _float_specials(dtype: np.dtype) -> list[float]:
    info = np.finfo(dtype)
    return [np.nan, np.inf, -np.inf, -0.0, 0.0, 1.0, -1.0, 0.5, float(info.max), -float(info.max),
            float(info.smallest_normal), float(info.smallest_subnormal), -float(info.smallest_subnormal),
            float(info.max) / 2, 2.0 ** 20, 3.0]


def _int_specials(dtype: np.dtype) -> list[int]:
    info = np.iinfo(dtype)
    return [int(info.min), int(info.max), 0, 1, -1 if info.min < 0 else 2, int(info.max) - 1,
            int(info.min) + 1 if info.min < 0 else 3, 7, 63, 64]


def draw_index_values(dtype: np.dtype, count: int, kind: str, seed: int, bound: int) -> np.ndarray:
    """``count`` indices into an axis of ``bound`` elements, negative ones too where ``dtype`` is signed;
    ``kind`` unique: distinct positions (``count <= bound``)."""
    rng = np.random.default_rng(seed)
    positions = rng.integers(0, bound, count)
    if kind == "unique":  # (on other shapes, where the axis may be shorter than the list, some repeat)
        positions = np.concatenate([rng.permutation(bound), positions])[:count]
    if dtype.kind == "i" and kind == "index":
        positions = np.where(rng.random(count) < 0.4, positions - bound, positions)
    return positions.astype(dtype)


def draw_values(dtype: np.dtype, count: int, kind: str, seed: int, bound: int = 0) -> np.ndarray:
    """``count`` values of ``dtype``; ``kind`` mixes in specials (NaN, inf, -0.0) or extremes, or draws
    indices into an axis of ``bound`` elements (``index``, ``unique``)."""
    if kind in ("index", "unique"):
        return draw_index_values(dtype, count, kind, seed, bound)
    rng = np.random.default_rng(seed)
    if dtype.kind == "b":
        return rng.random(count) < 0.5
    if dtype.kind == "f":
        scale = [1.0, 1.0, 100.0, 1e-3][seed % 4]
        base = rng.standard_normal(count) * scale
        specials = _float_specials(dtype)
    else:
        info = np.iinfo(dtype)
        low, high = (0, 12) if info.min == 0 else (-8, 8)
        base = rng.integers(low, high, count, endpoint=True).astype(object)
        specials = _int_specials(dtype)
    if kind != "normal":
        share = 0.3 if kind == "special" else 0.6
        picks = rng.random(count) < share
        chosen = rng.integers(0, len(specials), count)
        base = np.array([specials[c] if p else b for b, p, c in zip(base, picks, chosen)], dtype=object)
        if kind == "extreme" and dtype.kind == "f":
            base = np.array([v * 1e30 if isinstance(v, float) and abs(v) < 10 and p else v
                             for v, p in zip(base, rng.random(count) < 0.3)], dtype=object)
    with np.errstate(all="ignore"):
        return np.array(list(base), dtype=object).astype(dtype) if count else np.zeros(0, dtype)


def base_shape(spec: ArrayInput) -> tuple[int, ...]:
    """The shape of the array a layout's view is taken of."""
    shape = spec.shape
    if not shape:
        return shape
    if spec.layout == "transposed":
        return tuple(reversed(shape))
    if spec.layout == "strided":
        return shape[:-1] + (2 * shape[-1] + 1,)
    return shape


def layout_suffix(spec: ArrayInput) -> str:
    """The view expression that turns the base array into the input (``.T``, ``[..., 1::2]``, ``[::-1]``)."""
    if not spec.shape or spec.layout == "contiguous":
        return ""
    return {"transposed": ".T", "strided": "[..., 1::2]", "reversed": "[::-1]"}[spec.layout]


def base_values(spec: ArrayInput) -> np.ndarray:
    dtype = np.dtype(spec.dtype)
    shape = base_shape(spec)
    return draw_values(dtype, math.prod(shape), spec.values, spec.seed, spec.bound).reshape(shape)


def build_input(spec: ArrayInput) -> np.ndarray:
    base = base_values(spec)
    return eval("base" + layout_suffix(spec), {"base": base})  # the same expression the source shows


# ----------------------------------------------------------------------------- rendering


def render_scalar(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return repr(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "np.nan"
        if math.isinf(value):
            return "np.inf" if value > 0 else "-np.inf"
        return repr(value)
    return repr(value)


def render_arg(arg: Any, names: list[str]) -> str:
    if isinstance(arg, Ref):
        return names[arg.index]
    if isinstance(arg, NumpyScalar):
        return f"np.{arg.dtype}({render_scalar(arg.value)})"
    if isinstance(arg, DType):
        return f"np.{arg.name}"
    if isinstance(arg, Param):
        return "s"
    if isinstance(arg, IntList):
        return f"[{', '.join(map(str, arg.values))}]"
    if isinstance(arg, Arange):
        return f"np.arange({arg.n})"
    if isinstance(arg, tuple):
        inner = ", ".join(render_arg(a, names) for a in arg)
        return f"({inner},)" if len(arg) == 1 else f"({inner})"
    return render_scalar(arg)


def _render_index_item(item: Any, names: list[str] | None = None, target: str = "") -> str:
    if isinstance(item, (Ref, IntList, Arange)):
        return render_arg(item, names or [])
    if isinstance(item, SelfMask):
        return f"{target} {item.comparison} {render_scalar(item.threshold)}"
    if item is None:
        return "None"
    if item is Ellipsis:
        return "..."
    if isinstance(item, tuple):  # a slice
        start, stop, step = ("" if p is None else str(p) for p in item)
        return f"{start}:{stop}" + (f":{step}" if step else "")
    return str(item)


def render_expression(op: Op, names: list[str]) -> str:
    args = [render_arg(a, names) for a in op.args]
    kwargs = [f"{k}={render_arg(v, names)}" for k, v in op.kwargs]
    if op.form == "call":
        return f"np.{op.name}({', '.join(args + kwargs)})"
    if op.form == "method":
        return f"{args[0]}.{op.name}({', '.join(args[1:] + kwargs)})"
    if op.form == "binop":
        return f"{args[0]} {op.name} {args[1]}"
    if op.form == "unop":
        return f"{op.name}{args[0]}"
    if op.form == "builtin":
        return f"{op.name}({args[0]})"
    if op.form == "attr":
        return f"{args[0]}.{op.name}"
    if op.form == "index":
        return f"{args[0]}[{render_index(op.args[1], names, args[0])}]"
    if op.form == "list_call":
        return f"np.{op.name}([{', '.join(args)}]{''.join(', ' + k for k in kwargs)})"
    raise ValueError(f"Op.form: expected call, method, binop, unop, builtin, attr, index or list_call, "
                     f"got {op.form!r}")


def render_index(index: Index, names: list[str], target: str) -> str:
    items = [_render_index_item(i, names, target) for i in index.items]
    single_array = len(items) == 1 and isinstance(index.items[0], (Ref, IntList, Arange, SelfMask))
    inner = ", ".join(items) + ("," if len(items) == 1 and not single_array else "")  # x[idx] as users write it
    return inner or "()"


COPIES = {"method": "{}.copy()", "call": "np.copy({})", "mul": "{} * 1", "inplace": "{}"}


def render_assignment(op: Op, names: list[str], name: str) -> str:
    """``name = <copy of the target>; name[index] = value`` on one line (``inplace``: the target itself is
    updated, and ``name`` is the target); ``add.at``: ``np.add.at(name, index, value)``; ``mask_apply``:
    ``name[mask] = name[mask] <value>`` with value an operator and operand (``* 2``) or a function name."""
    target, index, value = op.args
    style = op.copy_style
    into = names[target.index] if style == "inplace" else name
    subscript = render_index(index, names, into)
    if op.name == "add.at":
        (item,) = index.items
        update = f"np.add.at({into}, {_render_index_item(item, names, into)}, {render_arg(value, names)})"
    elif op.name == "mask_apply":
        selected = f"{into}[{subscript}]"
        function = value if isinstance(value, str) else None
        update = f"{into}[{subscript}] = " + (f"np.{function}({selected})" if function else
                                               f"{selected} {value[0]} {render_arg(value[1], names)}")
    else:
        update = f"{into}[{subscript}] {op.name} {render_arg(value, names)}"
    if style == "inplace":
        return f"{update}; {name} = {into}"
    return f"{name} = {COPIES[style].format(names[target.index])}; {update}"


def render_statement(op: Op, names: list[str], name: str) -> str:
    if op.form == "assign":
        return render_assignment(op, names, name)
    return f"{name} = {render_expression(op, names)}"


def _render_array_literal(values: np.ndarray) -> str:
    items = ", ".join(render_scalar(v) for v in values.ravel().tolist())
    return f"np.array([{items}], dtype=np.{values.dtype.name})"


# ----------------------------------------------------------------------------- the program


@dataclass(frozen=True)
class Program:
    """Inputs, operations and the indices of the returned values (inputs are values 0..n-1).

    signature: how the inputs are passed: ``flat`` (``program(x0, x1, ...)``), ``dict`` (``program(p)`` with
    ``p = {"x0": x0, ...}``) or ``nested`` (``program(x0, rest)`` with ``rest = [x1, {"a": x2, "b": [x3, ...]}]``);
    scalar: the value of a Python float parameter ``s`` passed last (None: no such parameter)."""
    inputs: tuple[ArrayInput, ...]
    ops: tuple[Op, ...]
    outputs: tuple[int, ...]
    signature: str = "flat"
    scalar: float | None = None

    @property
    def names(self) -> list[str]:
        return [f"x{i}" for i in range(len(self.inputs))] + [f"v{k}" for k in range(len(self.ops))]

    def statements(self) -> list[str]:
        names = self.names
        return [render_statement(op, names, names[len(self.inputs) + k]) for k, op in enumerate(self.ops)]

    def _tree(self, names: list[str]) -> tuple[list[str], list[str], str]:
        """The parameters, the statements that unpack them into x0, x1, ..., and the arguments of a call
        (as source) for this program's signature."""
        flat = names[:len(self.inputs)]
        scalar = ["s"] if self.scalar is not None else []
        if self.signature == "dict":
            items = ", ".join(f"{n!r}: {n}" for n in flat)
            return ["p"] + scalar, [f"{n} = p[{n!r}]" for n in flat], ", ".join(["{" + items + "}"] + scalar)
        if self.signature == "nested" and len(flat) >= 2:
            rest, tail = flat[1], flat[2:]
            inner = (f"{{'a': {tail[0]}, 'b': [{', '.join(tail[1:])}]}}" if tail else "")
            unpack = [f"{rest} = rest[0]"] + ([f"{tail[0]} = rest[1]['a']"] if tail else []) + \
                [f"{n} = rest[1]['b'][{k}]" for k, n in enumerate(tail[1:])]
            tree = f"[{rest}{', ' + inner if inner else ''}]"
            return [flat[0], "rest"] + scalar, unpack, ", ".join([flat[0], tree] + scalar)
        return flat + scalar, [], ", ".join(flat + scalar)

    def source(self) -> str:
        """Standalone Python: ``program(...)`` and ``make_inputs()`` (the call's arguments)."""
        names = self.names
        params, unpack, call = self._tree(names)
        body = [f"    {s}" for s in unpack + self.statements()]
        returned = ", ".join(names[i] for i in self.outputs)
        lines = ["import numpy as np", "", "", f"def program({', '.join(params)}):", *body,
                 f"    return ({returned},)", "", "", "def make_inputs():"]
        for i, spec in enumerate(self.inputs):
            values = base_values(spec)
            shape = ", ".join(str(s) for s in values.shape)
            reshape = f".reshape(({shape}{',' if values.ndim == 1 else ''}))"
            if values.size > LITERAL_LIMIT:
                lines[0] = "import numpy as np\nfrom tests.fuzz.program import draw_values"
                bound = f", {spec.bound}" if spec.bound else ""
                literal = f"draw_values(np.dtype(np.{spec.dtype}), {values.size}, {spec.values!r}, {spec.seed}{bound})"
            else:
                literal = _render_array_literal(values)
            lines.append(f"    {names[i]} = {literal}{reshape}{layout_suffix(spec)}")
        if self.scalar is not None:
            lines.append(f"    s = {render_scalar(self.scalar)}")
        lines.append(f"    return ({call},)" if call else "    return ()")
        return "\n".join(lines) + "\n"

    def with_other_values(self, offset: int = 1) -> "Program":
        """The same program on inputs of the same types and layouts with other values (indices stay in
        range: they are drawn for the same axis size)."""
        inputs = tuple(dataclasses.replace(spec, seed=spec.seed + offset) for spec in self.inputs)
        scalar = None if self.scalar is None else OTHER_SCALAR.get(self.scalar, -1.25 * self.scalar + 0.5)
        return dataclasses.replace(self, inputs=inputs, scalar=scalar)

    def with_other_shapes(self) -> "Program":
        """The same program on inputs of the same dtypes and ndim with other sizes (0 and 1 stay); index inputs
        keep their shape, their values are drawn for the smaller of an axis size and its other size."""
        inputs = tuple(dataclasses.replace(spec, shape=tuple(OTHER_SIZE.get(n, n) for n in spec.shape))
                       if not spec.bound else
                       dataclasses.replace(spec, bound=min(spec.bound, OTHER_SIZE.get(spec.bound, spec.bound)))
                       for spec in self.inputs)
        return dataclasses.replace(self, inputs=inputs)

    def has_value_dependent_errors(self) -> bool:
        """Whether NumPy may reject the program for its values alone (integer powers with negative exponents)."""
        return any(op.name in ("power", "**") for op in self.ops)

    def function(self):
        namespace: dict[str, Any] = {}
        exec(compile(self.source(), "<fuzz program>", "exec"), namespace)
        return namespace["program"]

    def make_inputs(self) -> tuple[np.ndarray, ...]:
        """The input arrays x0, x1, ... (fresh each time: a program may update them in place)."""
        return tuple(build_input(spec) for spec in self.inputs)

    def arguments(self, arrays: tuple[np.ndarray, ...]) -> tuple:
        """The call's arguments for ``arrays`` (the same array objects, in this program's signature)."""
        namespace: dict[str, Any] = {"np": np, **dict(zip(self.names, arrays))}
        _, _, call = self._tree(self.names)
        if self.scalar is not None:
            namespace["s"] = self.scalar
        return eval(f"({call},)", namespace) if call else ()


@dataclass
class Evaluation:
    """Every value of a program run eagerly with NumPy, how exactly each is reproducible, or the error."""
    values: list[Any]
    exactness: list[str]
    undefined: list[bool]        # no defined result: a cast NumPy warned about (NaN or out of range to int), or
                                 # the sign of a NaN an operation made (x86 makes -NaN, a GPU +NaN) read
    error: BaseException | None = None
    failed_statement: str = ""

    def outputs(self, program: Program) -> tuple:
        return tuple(self.values[i] for i in program.outputs)


def _finite(values: Any) -> np.ndarray:
    """The finite ones among ``values``, in float64, flattened."""
    x = np.asarray(values, dtype=np.float64).ravel()
    return x[np.isfinite(x)]


def near_domain_edge(op: Op, operands: list[str], values: list[Any]) -> bool:
    """Whether an inexact operand of a function like log or sqrt comes within 0.1% of its domain's edge
    (or, for power, whether an inexact exponent meets a base that is not positive)."""
    if op.name not in DOMAIN_EDGES or INEXACT not in operands:
        return False
    if op.name in ("power", "**"):
        base = np.asarray(values[0], dtype=np.float64)
        if operands[1] == INEXACT and (base[~np.isnan(base)] <= 0).any():
            return True
        if operands[0] != INEXACT:
            return False
    x = _finite(values[0])
    margin = 1e-3 * max(1.0, float(np.abs(x).max(initial=0.0)))
    return any((np.abs(x - edge) <= margin).any() for edge in DOMAIN_EDGES[op.name])


def product_may_overflow(terms: Any, dtype: np.dtype) -> bool:
    """Whether some order of multiplying ``terms`` overflows ``dtype``: then the order decides between
    inf, NaN (inf times a zero met later) and a finite product, and NumPy's order is its own choice."""
    magnitudes = np.abs(_finite(terms))
    large = magnitudes[magnitudes > 1]
    return bool(np.log2(large).sum() >= np.log2(float(np.finfo(dtype).max)))


def sum_may_overflow(terms: Any, dtype: np.dtype) -> bool:
    """Whether some order of adding ``terms`` overflows ``dtype`` (two values near its largest of one sign
    meet before one of the other sign): NumPy's pairwise order and a GPU's tree then disagree (inf or a
    finite sum; with an infinity among the terms, inf or NaN)."""
    x = _finite(terms)
    with np.errstate(over="ignore"):  # a sum beyond the terms' dtype: inf, which answers yes
        return max(float(x[x > 0].sum()), float(-x[x < 0].sum())) >= float(np.finfo(dtype).max)


def squares_may_overflow(values: Any, dtype: np.dtype) -> bool:
    """Whether var's sum of squared deviations can overflow ``dtype``: NumPy sums float16 squares in float16
    (inf where the variance itself is finite), gputrace in float32."""
    x = _finite(values)
    with np.errstate(over="ignore"):  # squares beyond float64: inf, which answers yes
        return bool(x.size) and float(((x - x.mean()) ** 2).sum()) >= float(np.finfo(dtype).max) / 2


def norm_may_overflow(values: Any, dtype: np.dtype) -> bool:
    """Whether a norm's sum of squares (or of magnitudes) can overflow ``dtype`` in some order: NumPy's whole-array
    norm is a dot product, gputrace's a sum."""
    x = np.abs(_finite(values)).astype(np.float64)
    with np.errstate(over="ignore"):
        return bool(x.size) and float(np.maximum(x * x, x).sum()) >= float(np.finfo(dtype).max) / 2


def contraction_may_overflow(operands: list, dtype: np.dtype) -> bool:
    """Whether a sum of products of ``operands`` can overflow ``dtype``, or meet an infinity, in some order:
    gputrace sums an operand's own labels before multiplying (as NumPy's einsum does with optimize=True), NumPy's
    default multiplies first, so inf * 0 (NaN) in one is 0 in the other, and (-inf + 1) * (-inf + 1) = inf
    there where the products add up to inf - inf = NaN."""
    if any(x.dtype.kind == "f" and not np.isfinite(x).all() for x in operands):
        return True
    bound = 1.0
    for x in operands:
        finite = np.abs(_finite(x)).astype(np.float64)
        bound *= max(float(finite.max(initial=0.0)), 1.0) * max(x.size, 1)
    return bound >= float(np.finfo(dtype).max) / 2


# reductions whose partial results may overflow in one order of accumulation and not in another
ORDER_DEPENDENT_OVERFLOW = {"prod": (product_may_overflow,), "sum": (sum_may_overflow,), "mean": (sum_may_overflow,),
                            "nanprod": (product_may_overflow,), "nansum": (sum_may_overflow,),
                            "nanmean": (sum_may_overflow,),
                            "var": (squares_may_overflow, sum_may_overflow),
                            "std": (squares_may_overflow, sum_may_overflow), "linalg.norm": (norm_may_overflow,)}


def value_exactness(op: Op, operands: list[str], result: Any, values: list[Any] | None = None) -> str:
    """EXACT, INEXACT or UNSTABLE for ``op``'s result, from its operands' exactness (and values)."""
    if UNSTABLE in operands:
        return UNSTABLE
    result_float = np.asarray(result).dtype.kind == "f"
    inexact = [e == INEXACT for e in operands]
    if op.form == "assign":
        return assignment_exactness(op, operands, result_float)
    if op.name == "astype":
        return EXACT if not any(inexact) else INEXACT if result_float else UNSTABLE
    if op.name == "copysign":  # continuous in its first operand, jumps with the sign of the second
        return UNSTABLE if inexact[1] else INEXACT if inexact[0] else EXACT
    jumps = op.name in DISCONTINUOUS or op.name == "where" and inexact[0] or not result_float
    if jumps and any(inexact) or near_domain_edge(op, operands, values or [None] * len(operands)):
        return UNSTABLE
    if result_float and values and any(may_overflow(values[0], np.asarray(result).dtype)
                                       for may_overflow in ORDER_DEPENDENT_OVERFLOW.get(op.name, ())):
        return UNSTABLE
    if result_float and op.name in ("einsum", "tensordot") and values and \
            contraction_may_overflow([np.asarray(v) for v in values if not isinstance(v, str)],
                                     np.asarray(result).dtype):
        return UNSTABLE
    if result_float and (op.name in TRANSCENDENTAL or op.name in ACCUMULATING):
        return INEXACT
    return INEXACT if any(inexact) else EXACT


def assignment_exactness(op: Op, operands: list[str], result_float: bool) -> str:
    """An assignment's result: a mask of an inexact value may select other elements in another implementation;
    an inexact value cast into an integer target jumps; np.add.at sums floats in an order of its own."""
    target, index, value = op.args
    if any(isinstance(i, SelfMask) for i in index.items) and operands[0] == INEXACT:
        return UNSTABLE
    if op.name == "mask_apply":  # value: a function name or (operator, operand) applied to the selected elements
        inexact_value = (value if isinstance(value, str) else value[0]) in TRANSCENDENTAL
        if inexact_value or operands[0] == INEXACT:
            return INEXACT if result_float else UNSTABLE
        return EXACT
    if INEXACT in operands:
        return INEXACT if result_float else UNSTABLE
    return INEXACT if op.name == "add.at" and result_float else EXACT


def _operand_exactness(op: Op, exactness: list[str]) -> list[str]:
    found = [exactness[a.index] if isinstance(a, Ref) else EXACT for a in op.args]
    if any(exactness[i] == UNSTABLE for i in op.refs()):  # an index array computed from an inexact value
        found.append(UNSTABLE)
    return found


class Evaluator:
    """Runs a program's statements one at a time with NumPy (warnings silenced), keeping every value."""

    def __init__(self, inputs: tuple, names: list[str], scalar: float | None = None):
        self.names = names
        self.namespace: dict[str, Any] = {"np": np, "s": scalar, **dict(zip(names, inputs))}
        self.values = list(inputs)
        self.inputs = len(inputs)
        self.exactness = [EXACT] * len(inputs)
        self.undefined = [False] * len(inputs)
        self.saved: list[tuple[int, int, np.ndarray, str, bool]] = []  # inputs before an update in place

    def step(self, op: Op) -> Any:
        """Append ``op``'s result; NumPy's exception propagates and nothing is appended."""
        name = self.names[len(self.values)]
        statement = render_statement(op, self.names, name)
        inplace = op.form == "assign" and op.copy_style == "inplace"
        if inplace:
            target = op.args[0].index
            self.saved.append((len(self.values), target, self.values[target].copy(), self.exactness[target],
                               self.undefined[target]))
        with warnings.catch_warnings(record=True) as caught, np.errstate(all="warn"):
            warnings.simplefilter("always")
            try:
                exec(statement, self.namespace)
            except BaseException:
                if inplace:
                    self._restore(len(self.values))
                raise
        result = self.namespace[name]
        operands = [self.values[a.index] if isinstance(a, Ref) else a.numpy() if isinstance(a, NumpyScalar) else
                    self.namespace["s"] if isinstance(a, Param) else a for a in op.args]
        try:
            exactness = value_exactness(op, _operand_exactness(op, self.exactness), result, operands)
        except Exception as error:  # never blame NumPy for the fuzzer's own bookkeeping
            raise FuzzerError(f"classifying `{statement}` failed: {error!r}") from error
        self.values.append(result)
        self.exactness.append(exactness)
        if inplace:  # the input now holds the assignment's result
            self.exactness[target] = exactness
        cast_undefined = (op.name == "astype" or op.form == "assign") and any(
            "invalid value encountered in cast" in str(w.message) for w in caught)
        sign_read = {"signbit": 0, "copysign": 1}.get(op.name)  # the operand whose sign the result takes
        nan_sign = sign_read is not None and self._made_nan(op.args[sign_read])
        self.undefined.append(cast_undefined or nan_sign or any(self.undefined[i] for i in op.refs()))
        if inplace:
            self.undefined[target] = self.undefined[-1]
        return result

    def _restore(self, count: int) -> None:
        """Undo the updates in place made by the operations from value ``count`` on (latest first)."""
        while self.saved and self.saved[-1][0] >= count:
            _, target, before, exactness, undefined = self.saved.pop()
            self.values[target][...] = before
            self.exactness[target], self.undefined[target] = exactness, undefined

    def _made_nan(self, arg: Any) -> bool:
        """Whether ``arg`` is a computed value holding a NaN (an input's NaN keeps its sign everywhere)."""
        if not isinstance(arg, Ref) or arg.index < self.inputs:
            return False
        value = np.asarray(self.values[arg.index])
        return value.dtype.kind == "f" and bool(np.isnan(value).any())

    def truncate(self, count: int) -> None:
        """Forget every value after the first ``count`` (inputs updated in place since are restored)."""
        self._restore(count)
        for values in (self.values, self.exactness, self.undefined):
            del values[count:]


def evaluate(program: Program, inputs: tuple | None = None, after_step=None) -> Evaluation:
    """Run ``program`` eagerly with NumPy: every value, or NumPy's error and the statement that raised it;
    ``after_step(op, evaluator)`` follows each statement NumPy ran (reference.py runs its own beside)."""
    inputs = program.make_inputs() if inputs is None else inputs
    evaluator = Evaluator(inputs, program.names, program.scalar)
    for op in program.ops:
        try:
            evaluator.step(op)
            if after_step is not None:
                after_step(op, evaluator)
        except FuzzerError:
            raise
        except Exception as error:  # NumPy rejected the program: gputrace must reject it alike
            name = program.names[len(evaluator.values)]
            return Evaluation(evaluator.values, evaluator.exactness, evaluator.undefined, error,
                              render_statement(op, program.names, name))
    return Evaluation(evaluator.values, evaluator.exactness, evaluator.undefined)
