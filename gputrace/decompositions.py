"""NumPy functions traced as compositions of other traced operations (as torch._decomp writes aten ops).

Each runs NumPy's own steps on traced arrays, so the graph holds sums, products, matmuls and views that
the passes fuse and the backends run like any others: ``x / np.linalg.norm(x, axis=-1, keepdims=True)``
is one kernel, ``np.einsum("bhqd,bhkd->bhqk", q, k)`` one batched matmul (and ``np.tensordot``, ``np.inner``,
``np.vdot`` are einsums), ``np.nanmax(x, axis=1)`` one row kernel (NaN replaced, max, all-NaN rows found).
"""
from __future__ import annotations

import string
from typing import Any

import numpy as np

from . import ops
from .tracer import TracedArray, _concrete, _reject_kwargs, implements, record, unsupported


def _numpy_checks(fn: Any, *args: Any, **kwargs: Any) -> None:
    """Run NumPy's ``fn`` for its argument checks: its errors are the user's; its result and its floating-point
    warnings are not (the traced steps compute and warn)."""
    with np.errstate(all="ignore"):
        fn(*args, **kwargs)


def _array(x: Any) -> Any:
    """A traced array as it is; anything else as np.asarray makes it (a Python scalar then has a dtype, as in
    these NumPy functions: np.inner(x, 2.0) of a float32 x is float64)."""
    return x if isinstance(x, TracedArray) else np.asarray(x)


@implements(np.outer)
def _outer(a, b, out=None):
    _reject_kwargs("outer", {"out": out}, out=None)
    return np.multiply(_array(a).ravel()[:, None], _array(b).ravel()[None, :])


@implements(np.linalg.norm)
def _norm(x, ord=None, axis=None, keepdims=False):
    """np.linalg.norm, step for step as NumPy computes it, from traced sums, max and min, which fuse.

    The matrix norms of singular values (ord 2, -2, 'nuc') are refused. NumPy's default norm of the
    whole array is a dot product of its elements (float16 products exact, accumulated in float32): here
    their sum, float16 squared in float32 likewise."""
    if _concrete(x).dtype.kind not in "fc":
        x = x.astype(float)
    ndim = x.ndim
    if axis is None and (ord is None or (ord in ("f", "fro") and ndim == 2) or (ord == 2 and ndim == 1)):
        wide = x.astype(np.float32) if x.dtype == np.float16 else x
        norm = np.sqrt(np.sum(wide * wide).astype(x.dtype))
        return norm.reshape([1] * ndim) if keepdims else norm
    if axis is None:
        axis = tuple(range(ndim))
    elif not isinstance(axis, tuple):
        try:
            axis = int(axis)
        except Exception as e:
            raise TypeError("'axis' must be None, an integer or a tuple of integers") from e
        axis = (axis,)
    if len(axis) == 1:
        if ord == np.inf:
            return np.abs(x).max(axis=axis, keepdims=keepdims, initial=0)
        if ord == -np.inf:
            return np.abs(x).min(axis=axis, keepdims=keepdims)
        if ord == 0:
            return (x != 0).astype(x.dtype).sum(axis=axis, keepdims=keepdims)
        if ord == 1:
            return np.add.reduce(np.abs(x), axis=axis, keepdims=keepdims)
        if ord is None or ord == 2:
            return np.sqrt(np.add.reduce(x * x, axis=axis, keepdims=keepdims))
        if isinstance(ord, str):
            raise ValueError(f"Invalid norm order '{ord}' for vectors")
        powers = (np.abs(x) ** ord).astype(x.dtype)  # NumPy raises in place: |x| **= ord keeps |x|'s dtype
        total = np.add.reduce(powers, axis=axis, keepdims=keepdims)
        return total ** np.reciprocal(ord, dtype=total.dtype)
    if len(axis) != 2:
        raise ValueError("Improper number of dimensions to norm.")
    row_axis, col_axis = (ops.normalize_axes(a, ndim, "norm")[0] for a in axis)
    if row_axis == col_axis:
        raise ValueError("Duplicate axes given.")
    if ord in (2, -2, "nuc"):
        raise unsupported(f"np.linalg.norm(..., ord={ord!r}) over two axes",
                          "it is computed from singular values; ord=None, 'fro', 1, -1, inf and -inf are traced")
    if ord in (1, -1):
        col_axis -= col_axis > row_axis
        sums = np.add.reduce(np.abs(x), axis=row_axis)
        norm = sums.max(axis=col_axis, initial=0) if ord == 1 else sums.min(axis=col_axis)
    elif ord in (np.inf, -np.inf):
        row_axis -= row_axis > col_axis
        sums = np.add.reduce(np.abs(x), axis=col_axis)
        norm = sums.max(axis=row_axis, initial=0) if ord == np.inf else sums.min(axis=row_axis)
    elif ord in (None, "fro", "f"):
        norm = np.sqrt(np.add.reduce(x * x, axis=axis))
    else:
        raise ValueError("Invalid norm order for matrices.")
    if keepdims:
        shape = list(x.shape)
        shape[axis[0]] = shape[axis[1]] = 1
        norm = norm.reshape(shape)
    return norm


@implements(np.isclose)
def _isclose(a, b, rtol=1e-05, atol=1e-08, equal_nan=False):
    """NumPy's isclose, step for step: one elementwise kernel."""
    x, y, atol, rtol = (v if isinstance(v, (int, float, complex)) else _array(v) for v in (a, b, atol, rtol))
    if not isinstance(y, (int, float, complex)):
        y = y.astype(np.result_type(_concrete(y), 1.0))  # an inexact y: abs(MIN_INT) would wrap
    elif isinstance(y, int):
        y = float(y)
    result = (np.less_equal(abs(x - y), atol + rtol * abs(y)) & np.isfinite(y)) | (x == y)
    return result | (np.isnan(x) & np.isnan(y)) if equal_nan else result


# ----------------------------------------------------------------------------- NaN-ignoring reductions, ptp, diff


def _given(**kwargs: Any) -> dict:
    """The keyword arguments the caller gave (NumPy's functions mark the others np._NoValue)."""
    return {k: v for k, v in kwargs.items() if v is not np._NoValue}


def _replace_nan(a: Any, value: float) -> tuple[Any, Any]:
    """NumPy's _replace_nan: ``a`` with its NaNs replaced by ``value``, and the NaN mask (None where ``a`` cannot
    hold NaN)."""
    if _concrete(a).dtype.kind not in "fc":
        return a, None
    mask = np.isnan(a)
    return np.where(mask, value, a).astype(_concrete(a).dtype), mask


def _nan_reduction(reduce: Any, value: float) -> Any:
    def handler(a, axis=None, dtype=None, out=None, keepdims=np._NoValue, initial=np._NoValue, where=np._NoValue):
        return reduce(_replace_nan(a, value)[0], axis=axis, dtype=dtype, out=out,
                      **_given(keepdims=keepdims, initial=initial, where=where))
    return handler


implements(np.nansum)(_nan_reduction(np.sum, 0))
implements(np.nanprod)(_nan_reduction(np.prod, 1))


def _nan_scan(scan: Any, value: float) -> Any:
    def handler(a, axis=None, dtype=None, out=None):
        return scan(_replace_nan(a, value)[0], axis=axis, dtype=dtype, out=out)
    return handler


implements(np.nancumsum)(_nan_scan(np.cumsum, 0))
implements(np.nancumprod)(_nan_scan(np.cumprod, 1))


def _nan_extremum(extremum: Any, value: float) -> Any:
    def handler(a, axis=None, out=None, keepdims=np._NoValue, initial=np._NoValue, where=np._NoValue):
        given = _given(keepdims=keepdims, initial=initial, where=where)
        replaced, mask = _replace_nan(a, value)
        result = extremum(replaced, axis=axis, out=out, **given)
        if mask is None or "initial" in given:  # as np.fmax.reduce: NaNs skipped, initial joins every slice
            return result
        return np.where(np.all(mask, axis=axis, **given), np.nan, result)  # an all-NaN slice gives NaN
    return handler


implements(np.nanmax)(_nan_extremum(np.amax, -np.inf))
implements(np.nanmin)(_nan_extremum(np.amin, np.inf))


@implements(np.nanmean)
def _nanmean(a, axis=None, dtype=None, out=None, keepdims=np._NoValue, *, where=np._NoValue):
    given = _given(keepdims=keepdims, where=where)
    replaced, mask = _replace_nan(a, 0)
    if mask is None:
        return np.mean(replaced, axis=axis, dtype=dtype, out=out, **given)
    if dtype is not None and np.dtype(dtype).kind not in "fc":
        raise TypeError("If a is inexact, then dtype must be inexact")
    count = np.sum(~mask, axis=axis, dtype=np.intp, **given)
    total = np.sum(replaced, axis=axis, dtype=dtype, out=out, **given)
    return (total / count).astype(total.dtype)  # NumPy divides in place: in float64, kept in total's dtype


@implements(np.ptp)
def _ptp(a, axis=None, out=None, keepdims=np._NoValue):
    given = _given(keepdims=keepdims)
    return np.subtract(np.amax(a, axis=axis, out=out, **given), np.amin(a, axis=axis, **given))


@implements(np.diff)
def _diff(a, n=1, axis=-1, prepend=np._NoValue, append=np._NoValue):
    if n == 0:
        return a
    if n < 0:
        raise ValueError("order must be non-negative but got " + repr(n))
    ndim = np.ndim(_concrete(a))
    if ndim == 0:
        raise ValueError("diff requires input that is at least one dimensional")
    axis = ops.normalize_axes(axis, ndim, "diff")[0]
    pieces = []
    for extra in (prepend, None, append):
        if extra is None:
            pieces.append(a)
        elif extra is not np._NoValue:
            extra = _array(extra)
            if np.ndim(_concrete(extra)) == 0:  # a scalar: one slice of it along the axis, in its own dtype
                edge = tuple(slice(0, 1) if d == axis else slice(None) for d in range(ndim))
                extra = extra * np.ones_like(a[edge], dtype=_concrete(extra).dtype)
            pieces.append(extra)
    if len(pieces) > 1:
        a = np.concatenate(pieces, axis)
    later, earlier = ([slice(None)] * ndim for _ in range(2))
    later[axis], earlier[axis] = slice(1, None), slice(None, -1)
    op = np.not_equal if _concrete(a).dtype == np.bool_ else np.subtract
    for _ in range(n):
        a = op(a[tuple(later)], a[tuple(earlier)])
    return a


@implements(np.trace)
def _trace(a, offset=0, axis1=0, axis2=1, dtype=None, out=None):
    _reject_kwargs("trace", {"out": out}, out=None)
    return np.sum(np.diagonal(a, offset, axis1, axis2), axis=-1, dtype=dtype)


@implements(np.einsum)
def _einsum(subscripts, *operands, out=None, dtype=None, order="K", casting="safe", optimize=False):
    """np.einsum with string subscripts (``_contract_all``); a label repeated in one operand ('ii->i') takes
    that operand's diagonal first."""
    _reject_kwargs("einsum", {"out": out, "dtype": dtype, "order": order, "casting": casting},
                   out=None, dtype=None, order="K", casting="safe")
    if not isinstance(subscripts, str):
        raise unsupported("np.einsum with subscripts as lists of operand axes", "give them as a string ('ij,jk->ik')")
    _numpy_checks(np.einsum, subscripts, *(_concrete(x) for x in operands), optimize=optimize)
    terms, output = _einsum_labels(subscripts.replace(" ", ""), [np.ndim(_concrete(x)) for x in operands])
    operands = [_array(x) for x in operands]
    for k, term in enumerate(terms):
        while len(set(term)) != len(term):  # a label repeated in one operand: its diagonal, as the last axis
            label = next(label for label in term if term.count(label) > 1)
            first = term.index(label)
            second = term.index(label, first + 1)
            operands[k] = record("np::diagonal", [operands[k]],
                                 {"offset": 0, "axis1": first, "axis2": second, "einsum_label": label})
            term = [l for i, l in enumerate(term) if i not in (first, second)] + [label]
        terms[k] = term
    return _contract_all(operands, terms, output)


@implements(np.tensordot)
def _tensordot(a, b, axes=2):
    _numpy_checks(np.tensordot, _concrete(a), _concrete(b), axes)
    na, nb = np.ndim(_concrete(a)), np.ndim(_concrete(b))
    try:
        axes_a, axes_b = axes
    except TypeError:
        axes_a, axes_b = range(-int(axes), 0), range(int(axes))
    axes_a, axes_b = ([axis % n for axis in ([given] if isinstance(given, (int, np.integer)) else given)]
                      for given, n in ((axes_a, na), (axes_b, nb)))
    letters = iter(string.ascii_letters)
    la, lb = [next(letters) for _ in range(na)], [next(letters) for _ in range(nb)]
    for i, j in zip(axes_a, axes_b):
        lb[j] = la[i]  # summed over
    output = [l for k, l in enumerate(la) if k not in axes_a] + [l for k, l in enumerate(lb) if k not in axes_b]
    return _contract_all([a, b], [la, lb], output)


@implements(np.inner)
def _inner(a, b, /):
    if np.ndim(_concrete(a)) == 0 or np.ndim(_concrete(b)) == 0:
        return np.multiply(_array(a), _array(b))
    _numpy_checks(np.inner, _concrete(a), _concrete(b))
    return _tensordot(a, b, (-1, -1))


@implements(np.vdot)
def _vdot(a, b, /):
    _numpy_checks(np.vdot, _concrete(a), _concrete(b))
    return _contract_all([_array(a).ravel(), _array(b).ravel()], [["i"], ["i"]], [])


def _contract_all(operands: list, terms: list[list[str]], output: list[str]) -> Any:
    """The einsum of ``operands`` (traced or constant) labelled ``terms``, with ``output``'s labels.

    Each operand's labels nothing else needs are summed out, then operands are contracted left to right:
    a batched matmul where one label is contracted (the last label each side keeps alone is its rows or
    columns, the others batch axes), else a broadcast product summed over the contracted labels."""
    operands = [_array(x) for x in operands]
    result_dtype = np.result_type(*(_concrete(x) for x in operands))
    # every operand in the result's dtype first, as einsum casts them: a float16 operand of a float32
    # einsum is summed in float32
    operands = [x.astype(result_dtype) for x in operands]
    value, labels = operands[0], terms[0]
    for k in range(1, len(operands)):
        later = set(output).union(*terms[k + 1:])
        value, labels = _contract(value, labels, operands[k], terms[k], later, result_dtype)
    value, labels = _sum_out(value, labels, set(output), result_dtype)
    if labels != output:
        value = np.transpose(value, [labels.index(label) for label in output])
    return value


def _einsum_labels(subscripts: str, ndims: list[int]) -> tuple[list[list[str]], list[str]]:
    """Each operand's labels and the output's, NumPy's '...' spelled out with letters the subscripts do not use
    (right-aligned, as NumPy broadcasts them); without '->', the ellipsis then the labels used once, sorted."""
    inputs, arrow, explicit = subscripts.partition("->")
    terms = inputs.split(",")
    spare = [c for c in string.ascii_letters if c not in subscripts]
    widths = [ndim - len(term.replace("...", "")) if "..." in term else 0 for term, ndim in zip(terms, ndims)]
    if max(widths, default=0) > len(spare):
        raise unsupported(f"np.einsum('{subscripts}') with {max(widths)} dimensions under '...'")
    ellipsis = spare[:max(widths, default=0)]
    labels = [_spelled(term, ellipsis[len(ellipsis) - width:]) for term, width in zip(terms, widths)]
    if arrow:
        return labels, _spelled(explicit, ellipsis)
    counts = {c: inputs.count(c) for c in inputs if c.isalpha()}
    return labels, ellipsis + sorted(c for c, n in counts.items() if n == 1)


def _spelled(term: str, letters: list[str]) -> list[str]:
    """``term``'s labels, its '...' (if any) replaced by ``letters``."""
    before, dots, after = term.partition("...")
    return [*before, *(letters if dots else []), *after]


def _sum_out(x: Any, labels: list[str], keep: set[str], result_dtype: np.dtype) -> tuple[Any, list[str]]:
    """Sum ``x`` over its labels not in ``keep`` (integers and bools in their own dtype, as einsum sums)."""
    axes = tuple(i for i, label in enumerate(labels) if label not in keep)
    if not axes:
        return x, labels
    return (np.sum(x, axis=axes, dtype=None if result_dtype.kind in "fc" else result_dtype),
            [label for label in labels if label in keep])


def _contract(a: Any, la: list[str], b: Any, lb: list[str], later: set[str], result_dtype: np.dtype
              ) -> tuple[Any, list[str]]:
    """The product of ``a`` and ``b`` summed over the labels they share that ``later`` does not need."""
    a, la = _sum_out(a, la, later | set(lb), result_dtype)
    b, lb = _sum_out(b, lb, later | set(la), result_dtype)
    contracted = [label for label in la if label in lb and label not in later]
    a_only, b_only = [label for label in la if label not in lb], [label for label in lb if label not in la]
    if len(contracted) == 1 and (a_only or b_only) and _size(a, la, contracted[0]) == _size(b, lb, contracted[0]):
        # a batched matmul: a's last own label is the rows, b's the columns, every other kept label a batch
        # axis (size 1 on the side without it: matmul broadcasts it). Without rows or columns, dot products:
        # a product and a sum, one kernel, rather than a batch of 1 x 1 matmuls
        rows, columns = a_only[-1:], b_only[-1:]
        batch = [label for label in la + b_only if label in later and label not in rows + columns]
        left = _arrange(a, la, batch + rows + contracted)
        right = _arrange(b, lb, batch + contracted + columns)
        product = (left if rows else left[..., None, :]) @ (right if columns else right[..., None])
        if not (rows and columns):  # drop the axes added
            product = product[..., (slice(None) if rows else 0), (slice(None) if columns else 0)]
        return product, batch + rows + columns
    every = list(dict.fromkeys(la + lb))  # a broadcast product over every label, then the sum
    left, right = _arrange(a, la, every), _arrange(b, lb, every)
    if result_dtype == np.float16:  # products of halves are exact in float32, and summed there, as NumPy's dot
        product, labels = _sum_out(left.astype(np.float32) * right.astype(np.float32), every, later, result_dtype)
        return product.astype(np.float16), labels
    return _sum_out(left * right, every, later, result_dtype)


def _size(x: Any, labels: list[str], label: str) -> int:
    return np.shape(_concrete(x))[labels.index(label)]


def _arrange(x: Any, labels: list[str], order: list[str]) -> Any:
    """``x``'s axes in the order of ``order``'s labels, a new size-1 axis for each label ``x`` does not have."""
    axes = [labels.index(label) for label in order if label in labels]
    x = np.transpose(x, axes) if axes != sorted(axes) else x
    return x[tuple(slice(None) if label in labels else None for label in order)] if len(axes) < len(order) else x
