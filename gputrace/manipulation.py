"""NumPy's array-manipulation functions traced as compositions of views, joins and elementwise ops.

Flips and ``np.atleast_*d`` are views the kernels read through their strides; the stacks, ``np.append``,
``np.roll``, ``np.pad``, ``np.tile`` and ``np.repeat`` concatenate or broadcast; ``np.tril``, ``np.triu``,
``np.meshgrid`` and ``np.gradient`` are elementwise kernels. Where the graph would hold a size (a roll by
``shift % n``, a pad's blocks, a repeat's merged axis), the function reads the shape: the trace is redone
at other shapes rather than replayed with this shape's sizes.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
from numpy.lib.array_utils import normalize_axis_tuple

from .decompositions import _array, _numpy_checks
from .tracer import TracedArray, _broadcast_to, _concatenate, _concrete, implements, unsupported


def _shape(x: Any) -> tuple[int, ...]:
    """``x``'s shape; reading a traced array's shape makes gputrace trace the function again at other shapes."""
    return tuple(x.shape) if isinstance(x, TracedArray) else np.shape(x)


def _at(axis: int, item: Any) -> tuple:
    """The index taking ``item`` on ``axis`` and all of the axes before it."""
    return (slice(None),) * axis + (item,)


def _each(arrays: tuple, view: Callable) -> Any:
    results = [view(_array(a)) for a in arrays]
    return results[0] if len(results) == 1 else tuple(results)


# ----------------------------------------------------------------------------- dimensions, stacks, flips


@implements(np.atleast_1d)
def _atleast_1d(*arys):
    return _each(arys, lambda a: a[None] if a.ndim == 0 else a)


@implements(np.atleast_2d)
def _atleast_2d(*arys):
    return _each(arys, lambda a: a[(None,) * (2 - a.ndim)] if a.ndim < 2 else a)


_TO_3D = {0: (None, None, None), 1: (None, slice(None), None), 2: (Ellipsis, None)}


@implements(np.atleast_3d)
def _atleast_3d(*arys):
    return _each(arys, lambda a: a[_TO_3D[a.ndim]] if a.ndim < 3 else a)


def _sequence(arrays: Any) -> list:
    if not hasattr(arrays, "__getitem__"):
        raise TypeError('arrays to stack must be passed as a "sequence" type such as list or tuple.')
    return list(arrays)


@implements(np.hstack)
def _hstack(tup, *, dtype=None, casting="same_kind"):
    arrays = [_atleast_1d(a) for a in _sequence(tup)]
    return _concatenate(arrays, 0 if arrays and arrays[0].ndim == 1 else 1, dtype=dtype, casting=casting)


@implements(np.vstack)
def _vstack(tup, *, dtype=None, casting="same_kind"):
    return _concatenate([_atleast_2d(a) for a in _sequence(tup)], 0, dtype=dtype, casting=casting)


@implements(np.dstack)
def _dstack(tup):
    return _concatenate([_atleast_3d(a) for a in _sequence(tup)], 2)


@implements(np.column_stack)
def _column_stack(tup):
    columns = [a[:, None] if a.ndim == 1 else a[None, None] if a.ndim == 0 else a
               for a in map(_array, _sequence(tup))]
    return _concatenate(columns, 1)


@implements(np.append)
def _append(arr, values, axis=None):
    arr, values = _array(arr), _array(values)
    if axis is None:
        return _concatenate((arr.ravel(), values.ravel()), 0)
    return _concatenate((arr, values), axis)


@implements(np.flip)
def _flip(m, axis=None):
    m = _array(m)
    axes = range(m.ndim) if axis is None else normalize_axis_tuple(axis, m.ndim)
    return m[tuple(slice(None, None, -1) if d in axes else slice(None) for d in range(m.ndim))]


@implements(np.flipud)
def _flipud(m):
    m = _array(m)
    if m.ndim < 1:
        raise ValueError("Input must be >= 1-d.")
    return m[::-1]


@implements(np.fliplr)
def _fliplr(m):
    m = _array(m)
    if m.ndim < 2:
        raise ValueError("Input must be >= 2-d.")
    return m[:, ::-1]


# ----------------------------------------------------------------------------- roll, repeat, tile, pad


@implements(np.roll)
def _roll(a, shift, axis=None):
    """Each axis rolled by ``shift % n`` as a gather by the constant index ``(arange(n) - shift) % n``: a load
    inside the kernel that reads the result, no copy (the trace reads the shape)."""
    a = _array(a)
    if axis is None:
        # a copy: the reshaped view of the rolled temporary would refuse an assignment (NumPy's is a view of a
        # temporary nobody else holds)
        return _roll(a.ravel(), shift, 0).reshape(_shape(a)).copy()
    axes = normalize_axis_tuple(axis, a.ndim, allow_duplicate=True)
    pairs = np.broadcast(shift, axes)
    if pairs.ndim > 1:
        raise ValueError("'shift' and 'axis' should be scalars or 1D sequences")
    shifts = dict.fromkeys(range(a.ndim), 0)
    for sh, ax in pairs:
        shifts[ax] += int(sh)
    shape = _shape(a)
    original = a
    for ax, offset in shifts.items():
        offset %= shape[ax] or 1
        if offset:
            a = np.take(a, (np.arange(shape[ax]) - offset) % shape[ax], axis=ax)
    return a.copy() if a is original else a  # np.roll makes a new array, even when nothing moves


MAX_REPEAT_RUNS = 64  # np.repeat with a count per element: at most this many runs of equal counts


@implements(np.repeat)
def _repeat(a, repeats, axis=None):
    """Each element repeated: a new axis broadcast to the count and merged into ``axis`` (the trace reads the
    shape); a count per element, one such piece per run of equal counts, joined."""
    if isinstance(repeats, TracedArray):
        raise unsupported("np.repeat with traced repeats",
                          "the result's size would depend on the values: give the counts as ints or a NumPy array")
    a = _array(a)
    _numpy_checks(np.repeat, _concrete(a), repeats, axis)
    if axis is None:
        a, axis = a.ravel(), 0
    axis = normalize_axis_tuple(axis, a.ndim)[0]
    shape = _shape(a)
    counts = np.broadcast_to(np.asarray(repeats), (shape[axis],))
    if np.ndim(repeats) == 0 or np.size(repeats) == 1:
        return _repeat_each(a, shape, axis, int(counts[0]) if counts.size else 0)
    starts = [i for i in range(len(counts)) if i == 0 or counts[i] != counts[i - 1]]
    if len(starts) > MAX_REPEAT_RUNS:
        raise unsupported(f"np.repeat with {len(starts)} runs of different counts",
                          f"each run is one piece of the graph, and at most {MAX_REPEAT_RUNS} are traced")
    pieces = []
    for start, stop in zip(starts, starts[1:] + [len(counts)]):
        if counts[start]:
            part = a[_at(axis, slice(start, stop))]
            part_shape = shape[:axis] + (stop - start,) + shape[axis + 1:]
            pieces.append(_repeat_each(part, part_shape, axis, int(counts[start])))
    return _concatenate(pieces, axis) if pieces else a[_at(axis, slice(0, 0))]


def _repeat_each(a: Any, shape: tuple, axis: int, count: int) -> Any:
    """Each element of ``a`` (of ``shape``) along ``axis`` ``count`` times."""
    block = shape[:axis + 1] + (count,) + shape[axis + 1:]
    merged = shape[:axis] + (shape[axis] * count,) + shape[axis + 1:]
    if count == 1:  # NumPy's is a new array: a (read-only) broadcast view would refuse an assignment
        return a.copy()
    return _broadcast_to(a[_at(axis + 1, None)], block).reshape(merged)


@implements(np.tile)
def _tile(A, reps):
    """``A`` with a new axis before each of its axes, broadcast to ``reps`` and merged (the trace reads the shape)."""
    A = _array(A)
    try:
        reps = tuple(reps)
    except TypeError:
        reps = (reps,)
    _numpy_checks(np.tile, _concrete(A), reps)
    ndim = max(len(reps), A.ndim)
    A = A[(None,) * (ndim - A.ndim)]
    reps = (1,) * (ndim - len(reps)) + tuple(int(r) for r in reps)
    shape = _shape(A)
    spread = A[tuple(item for _ in range(ndim) for item in (None, slice(None)))]
    if all(r == 1 for r in reps):  # NumPy's is a new array: a (read-only) broadcast view would refuse an assignment
        return A.copy()
    return _broadcast_to(spread, [n for pair in zip(reps, shape) for n in pair]).reshape(
        [r * n for r, n in zip(reps, shape)])


_PAD_MODES = ("constant", "edge", "symmetric", "reflect", "wrap")


@implements(np.pad)
def _pad(array, pad_width, mode="constant", **kwargs):
    """Axis after axis, as NumPy pads (a corner takes the later axis's value): the array joined with constant
    blocks, or with slices of itself for the other modes (the trace reads the shape)."""
    array = _array(array)
    if callable(mode) or mode in ("empty", "linear_ramp", "maximum", "mean", "median", "minimum"):
        raise unsupported(f"np.pad(..., mode={getattr(mode, '__name__', mode)!r})",
                          f"the modes traced are {', '.join(_PAD_MODES)}")
    if mode in ("reflect", "symmetric") and kwargs.get("reflect_type") == "odd":
        raise unsupported("np.pad(..., reflect_type='odd')", "reflect_type='even' (the default) is traced")
    if any(isinstance(v, TracedArray) for v in (pad_width, *kwargs.values())):
        raise unsupported("np.pad with traced widths or values", "give them as numbers or NumPy arrays")
    _numpy_checks(np.pad, _concrete(array), pad_width, mode, **kwargs)  # NumPy's errors
    ndim, dtype = array.ndim, _concrete(array).dtype
    widths = np.broadcast_to(np.asarray(pad_width), (ndim, 2)).tolist()
    values = _pad_values(dtype, widths, kwargs) if mode == "constant" and ndim else None
    shape = list(_shape(array))
    original = array
    for axis, (before, after) in enumerate(widths):
        if not before and not after:
            continue
        if mode == "constant":
            blocks = [_broadcast_to(np.asarray(value), shape[:axis] + [width] + shape[axis + 1:])
                      for value, width in zip(values[axis], (before, after))]
            pieces = [block for block, width in zip(blocks, (before, after)) if width]
            pieces.insert(1 if before else 0, array)
        else:  # the array between the elements before and after it, each side in runs of slices
            indices = _pad_indices(mode, shape[axis], before, after)
            pieces = [*(_run(array, shape, axis, run) for run in _runs(indices[:before])), array,
                      *(_run(array, shape, axis, run) for run in _runs(indices[before + shape[axis]:]))]
        array = _concatenate(pieces, axis) if len(pieces) > 1 else pieces[0]
        shape[axis] += before + after
    return array.copy() if array is original else array  # np.pad makes a new array, even with nothing to add


def _pad_values(dtype: np.dtype, widths: list, kwargs: dict) -> list[tuple[Any, Any]]:
    """The value np.pad writes before and after each axis, as NumPy casts it to ``dtype``: read off a pad of
    a one-element array by at most one element per side."""
    small = [(min(before, 1), min(after, 1)) for before, after in widths]
    padded = np.pad(np.zeros((1,) * len(widths), dtype), small, "constant", **kwargs)
    values = []
    for axis in range(len(widths)):
        at = [before for before, _ in small]
        at[axis] = 0
        first = padded[tuple(at)]
        at[axis] = -1
        values.append((first, padded[tuple(at)]))
    return values


def _pad_indices(mode: str, n: int, before: int, after: int) -> list[int]:
    """Which element of an axis of ``n`` each position of the padded axis holds (NumPy's result, for any width:
    periodic, not reflected again and again as NumPy computes it)."""
    indices = []
    for t in range(-before, n + after):
        if mode == "edge":
            indices.append(min(max(t, 0), n - 1))
        elif mode == "wrap":
            indices.append(t % n)
        elif mode == "reflect" and n > 1:
            t %= 2 * (n - 1)
            indices.append(t if t < n else 2 * (n - 1) - t)
        elif mode == "symmetric":
            t %= 2 * n
            indices.append(t if t < n else 2 * n - 1 - t)
        else:  # reflect of one element: NumPy repeats it
            indices.append(0)
    return indices


def _runs(indices: list[int]) -> list[tuple[int, int, int]]:
    """``indices`` as runs (first, length, step) of step 1, -1 or 0 (one element repeated)."""
    runs: list[tuple[int, int, int]] = []
    for i in indices:
        if runs:
            first, length, step = runs[-1]
            if length == 1 and i - first in (-1, 0, 1):
                runs[-1] = (first, 2, i - first)
                continue
            if length > 1 and i == first + length * step:
                runs[-1] = (first, length + 1, step)
                continue
        runs.append((i, 1, 1))
    return runs


def _run(array: Any, shape: list, axis: int, run: tuple[int, int, int]) -> Any:
    first, length, step = run
    if step == 0:
        return _broadcast_to(array[_at(axis, slice(first, first + 1))], shape[:axis] + [length] + shape[axis + 1:])
    last = first + (length - 1) * step
    stop = last + step if last + step >= 0 else None
    return array[_at(axis, slice(first, stop, step))]


# ----------------------------------------------------------------------------- triangles, grids, gradients


def _positions(x: Any, axis: int) -> Any:
    """1, 2, 3, ... along ``axis`` of ``x`` (length 1 along the others): a scan of ones, so that one graph
    serves every size (a constant would hold this trace's)."""
    line = x[tuple(slice(None) if d == axis else slice(0, 1) for d in range(x.ndim))]
    return np.cumsum(np.ones_like(line, dtype=np.intp), axis=axis)


def _triangle(lower: bool) -> Callable:
    def handler(m, k=0):
        """np.tril / np.triu: the elements with ``column - row`` at most (at least) ``k`` kept, the others 0."""
        m = _array(m)
        _numpy_checks(np.tril if lower else np.triu, np.empty((0,) * m.ndim, _concrete(m).dtype), k)
        if m.ndim == 1:  # NumPy makes the square of a vector
            positions = _positions(m, 0)
            rows, columns = positions[:, None], positions[None, :]
        else:
            rows, columns = _positions(m, m.ndim - 2), _positions(m, m.ndim - 1)
        zero = np.zeros((), _concrete(m).dtype)[()]
        keep = np.less_equal(columns - rows, k) if lower else np.greater_equal(columns - rows, k)
        return np.where(keep, m, zero)
    return handler


implements(np.tril)(_triangle(lower=True))
implements(np.triu)(_triangle(lower=False))


def _broadcast_together(arrays: list) -> list:
    """The arrays broadcast against each other by ``np.where(True, x, other)`` (a broadcast_to would hold this
    trace's sizes): one array of the common shape first, then each of them against it, in one kernel."""
    def against(x, other):
        return np.where(True, x, other if other.dtype == x.dtype else other.astype(x.dtype))
    common = arrays[-1]
    for x in reversed(arrays[:-1]):
        common = against(x, common)  # arrays[0] in the end
    return [common] + [against(x, common) for x in arrays[1:]]


@implements(np.meshgrid)
def _meshgrid(*xi, copy=True, sparse=False, indexing="xy"):
    if indexing not in ("xy", "ij"):
        raise ValueError("Valid values for `indexing` are 'xy' and 'ij'.")
    vectors = [x if x.ndim == 1 else x.ravel() for x in map(_array, xi)]
    axes = list(range(len(xi)))
    if indexing == "xy" and len(xi) > 1:
        axes[:2] = 1, 0
    output = [x[tuple(slice(None) if d == axis else None for d in range(len(xi)))] for x, axis in zip(vectors, axes)]
    return tuple(output if sparse else _broadcast_together(output))


@implements(np.gradient)
def _gradient(f, *varargs, axis=None, edge_order=1):
    """NumPy's gradient, step for step: central differences inside, one-sided at the ends. The ends take
    elements by integer index, so that at a shape too short for ``edge_order`` the trace raises IndexError."""
    f = _array(f)
    ndim = f.ndim
    axes = tuple(range(ndim)) if axis is None else normalize_axis_tuple(axis, ndim)
    if any(isinstance(v, TracedArray) for v in varargs):
        raise unsupported("np.gradient with traced spacing", "give the spacing as numbers or NumPy arrays")
    if not varargs:
        dx = [1.0] * len(axes)
    elif len(varargs) == 1 and np.ndim(varargs[0]) == 0:
        dx = list(varargs) * len(axes)
    elif len(varargs) == len(axes):
        dx = [_spacing(f, d, ax) for d, ax in zip(varargs, axes)]
    else:
        raise TypeError("invalid number of arguments")
    if edge_order > 2:
        raise ValueError("'edge_order' greater than 2 not supported")
    otype = f.dtype
    if otype.kind not in "fc":
        if otype.kind in "iu":
            f = f.astype(np.float64)
        otype = np.dtype(np.float64)
    outvals = []
    for ax, ax_dx in zip(axes, dx):
        if _concrete(f).shape[ax] < edge_order + 1:
            raise ValueError("Shape of array too small to calculate a numerical gradient, "
                             "at least (edge_order + 1) elements are required.")
        pieces = [_gradient_edge(f, ax, ax_dx, edge_order, first=True), _gradient_inside(f, ax, ax_dx),
                  _gradient_edge(f, ax, ax_dx, edge_order, first=False)]
        outvals.append(_concatenate([p.astype(otype) for p in pieces], ax))
    return outvals[0] if len(axes) == 1 else tuple(outvals)


def _spacing(f: Any, distances: Any, axis: int) -> Any:
    """One axis's spacing as NumPy's gradient takes it: a scalar, or the differences of coordinates (a scalar
    where they are all equal). Coordinates belong to one length of the axis: the trace reads the shape."""
    if np.ndim(distances) == 0:
        return distances  # as given: a Python float stays weak, as in NumPy
    distances = np.asanyarray(distances)
    if distances.ndim != 1:
        raise ValueError("distances must be either scalars or 1d")
    if len(distances) != _shape(f)[axis]:
        raise ValueError("when 1d, distances must match the length of the corresponding dimension")
    if np.issubdtype(distances.dtype, np.integer):
        distances = distances.astype(np.float64)
    diffx = np.diff(distances)
    return diffx[0] if (diffx == diffx[0]).all() else diffx


def _along(ax: int, ndim: int, values: Any) -> Any:
    """A vector of per-position values shaped to broadcast along axis ``ax`` of an ``ndim``-d array."""
    return values.reshape([-1 if d == ax else 1 for d in range(ndim)])


def _gradient_inside(f: Any, ax: int, dx: Any) -> Any:
    before, here, after = (f[_at(ax, s)] for s in (slice(None, -2), slice(1, -1), slice(2, None)))
    if np.ndim(dx) == 0:
        return (after - before) / (2. * dx)
    dx1, dx2 = dx[0:-1], dx[1:]
    a = _along(ax, f.ndim, -(dx2) / (dx1 * (dx1 + dx2)))
    b = _along(ax, f.ndim, (dx2 - dx1) / (dx1 * dx2))
    c = _along(ax, f.ndim, dx1 / (dx2 * (dx1 + dx2)))
    return a * before + b * here + c * after


def _gradient_edge(f: Any, ax: int, dx: Any, edge_order: int, first: bool) -> Any:
    """The first (or last) element of the gradient along ``ax``, kept as an axis of length 1."""
    def at(i):
        return f[_at(ax, i)]
    uniform = np.ndim(dx) == 0
    if edge_order == 1:
        step = dx if uniform else dx[0 if first else -1]
        value = (at(1) - at(0)) / step if first else (at(-1) - at(-2)) / step
    elif first:
        if uniform:
            a, b, c = -1.5 / dx, 2. / dx, -0.5 / dx
        else:
            dx1, dx2 = dx[0], dx[1]
            a = -(2. * dx1 + dx2) / (dx1 * (dx1 + dx2))
            b = (dx1 + dx2) / (dx1 * dx2)
            c = - dx1 / (dx2 * (dx1 + dx2))
        value = a * at(0) + b * at(1) + c * at(2)
    else:
        if uniform:
            a, b, c = 0.5 / dx, -2. / dx, 1.5 / dx
        else:
            dx1, dx2 = dx[-2], dx[-1]
            a = (dx2) / (dx1 * (dx1 + dx2))
            b = - (dx2 + dx1) / (dx1 * dx2)
            c = (2. * dx2 + dx1) / (dx2 * (dx1 + dx2))
        value = a * at(-3) + b * at(-2) + c * at(-1)
    return value[_at(ax, None)]
