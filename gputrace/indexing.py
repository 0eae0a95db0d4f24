"""Indexing and assignment while tracing, with NumPy's semantics.

``x[index]`` with slices and integers is a view (``np::getitem``); with integer arrays, lists or ranges a
gather (``np::gather``, a copy). An assignment is recorded as a new value (``np::setitem``, ``np::ufunc_at``,
or ``np::where`` for a mask or the whole array, which fuses) and rebinds the proxy, as NumPy updates the
array: the array a view was taken from and its other live views are updated too, and an input updated in
place is written back after each call (``trace_graph`` records it).
"""
from __future__ import annotations

import operator
import warnings
import weakref
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import ops
from .errors import TracerWarning
from .ir import TensorType
from .tracer import (TracedArray, _concrete, _reject_kwargs, array_module, implements, is_array, record,
                     refuse_selection, unsupported, user_location)

_READ_ONLY_VIEWS = ("np::broadcast_to", "np::diagonal")  # NumPy's are read-only
_RESHAPES = ("np::reshape", "np::ravel")  # a view or a copy, by the memory layout
_NUMPY_INDEX_ERROR = ("only integers, slices (`:`), ellipsis (`...`), numpy.newaxis (`None`) and integer or "
                      "boolean arrays are valid indices")


# ----------------------------------------------------------------------------- indices


def parse_index(x: TracedArray, index: Any) -> tuple[tuple, list, Any]:
    """``index`` as (template, index arrays, boolean mask): the template has ``ops.INDEX_ARRAY`` where the
    arrays go; a constant boolean array becomes its ``nonzero()`` arrays, as NumPy reads it; a traced boolean
    array is returned as the mask (its selection's size depends on the data)."""
    items = index if isinstance(index, tuple) else (index,)
    if sum(1 for item in items if item is Ellipsis) > 1:
        raise IndexError("an index can only have a single ellipsis ('...')")
    template: list = []
    arrays: list = []
    mask = None
    for position, item in enumerate(items):
        if isinstance(item, (list, range)):
            item = _list_index(item)
        if isinstance(item, (bool, np.bool_)):
            raise unsupported(f"indexing with the boolean scalar {item!r}", "index with None to add an axis")
        if isinstance(item, TracedArray) or is_array(item):
            kind = _concrete(item).dtype.kind
            if kind == "b":
                if isinstance(item, TracedArray):
                    if mask is not None:
                        raise unsupported("indexing with two traced boolean masks", "combine them with &")
                    mask = (position, item)
                    template.append(ops.INDEX_ARRAY)
                    continue
                dim = _mask_start(items, position, x.ndim)
                _check_mask_shape(x._concrete.shape, dim, item.shape)
                x._state.reads_shape = True  # checked against this shape: traced again for others
                for part in np.nonzero(np.asarray(item)):
                    template.append(ops.INDEX_ARRAY)
                    arrays.append(_constant(x, part))
                continue
            if kind not in "iu":
                raise IndexError("arrays used as indices must be of integer (or boolean) type")
            template.append(ops.INDEX_ARRAY)
            arrays.append(_constant(x, item) if isinstance(items[position], (list, range)) else item)
        elif isinstance(item, slice):
            template.append(slice(*(None if p is None else operator.index(p)
                                    for p in (item.start, item.stop, item.step))))
        elif item is None or item is Ellipsis:
            template.append(item)
        else:
            try:
                template.append(operator.index(item))
            except TypeError:
                raise IndexError(_NUMPY_INDEX_ERROR) from None
    return tuple(template), arrays, mask


def _list_index(items: list | range) -> Any:
    """A list or range index as the array NumPy makes of it (an empty one is an integer array)."""
    if isinstance(items, list) and any(isinstance(i, TracedArray) for i in np.ravel(np.asarray(items, object))):
        raise unsupported("a list of traced values as an index", "make one array of them with np.stack")
    array = np.asarray(items)
    if array.size == 0 and array.dtype.kind == "f":
        array = array.astype(np.intp)
    if array.dtype.kind not in "iub":
        raise IndexError(_NUMPY_INDEX_ERROR)
    return array


def _constant(x: TracedArray, array: np.ndarray) -> TracedArray:
    """A constant index array as a proxy of the trace (a ``prim::Constant``, not a parameter)."""
    state = x._state
    node = state.graph.add_node("prim::Constant", [], [TensorType.of(array)], attrs={"value": array},
                                source=user_location())
    return state.wrap(node.output, array)


def _mask_start(items: tuple, position: int, ndim: int) -> int:
    """The first axis a boolean array at ``items[position]`` indexes."""
    def width(item: Any) -> int:
        if item is None:
            return 0
        return np.ndim(_concrete(item)) if (is_array(item) or isinstance(item, TracedArray)) \
            and _concrete(item).dtype == bool else 1
    if Ellipsis in items[:position]:
        return ndim - sum(width(i) for i in items[position:] if i is not Ellipsis)
    return sum(width(i) for i in items[:position])


def _check_mask_shape(shape: tuple[int, ...], start: int, mask_shape: tuple[int, ...]) -> None:
    if start + len(mask_shape) > len(shape):
        raise IndexError(f"too many indices for array: array is {len(shape)}-dimensional, but "
                         f"{start + len(mask_shape)} were indexed")
    for k, n in enumerate(mask_shape):
        if shape[start + k] != n:
            raise IndexError(f"boolean index did not match indexed array along axis {start + k}; size of axis is "
                             f"{shape[start + k]} but size of corresponding boolean axis is {n}")


# ----------------------------------------------------------------------------- reading


@dataclass(frozen=True, eq=False)
class Selection:
    """``x[mask]`` with a traced mask, whose size depends on the data: kept at x's shape, it goes through
    elementwise ops and is assigned back through its mask as a select (``x[m] = x[m] ** -1.5`` is
    ``x = np.where(m, x ** -1.5, x)``); any other use is refused (tracer.refuse_selection)."""
    mask: Any               # the mask's graph value
    source: Any             # where it was taken
    array: Any = None       # the mask (a traced array): it indexes the leading axes of the selected array


def reduce_selection(name: str, selected: TracedArray, axis: Any, dtype: Any, keepdims: bool,
                     initial: Any) -> TracedArray:
    """A reduction of ``x[mask]`` over its first axis (the selected elements) or all its axes, as the same
    reduction of ``np.where(mask, x, identity)`` over the mask's axes: ``X[labels == k].mean(axis=0)``.
    The mean divides by the number selected (NaN where none, as NumPy's mean of nothing)."""
    selection = selected._selection
    mask = selection.array
    k, ndim = mask.ndim, selected.ndim - mask.ndim + 1  # the selection's own dimensions: (count,) + rest
    axes = ops.normalize_axes(axis, ndim, name)
    row = ops.REDUCTION_ROWS[name]
    if initial is not np._NoValue:  # max and min start at it; sum's and prod's would join the result: refused
        identity = initial if row.empty_error is not None else None
    else:  # the masked-out elements change no combined value (mean's count is the mask's); var's mean they would
        identity = row.identity if row.finish in ((), (ops.MEAN,)) and row.identity not in (
            ops.LOWEST, ops.HIGHEST, None) else None
    if identity is None or (axes is not None and 0 not in axes):
        use = (f"np.{name} without initial= (an empty selection has no {name})" if name in ("max", "min") else
               f"np.{name} of it" + ("" if axes is None or 0 in axes else " along another axis than the selected"))
        raise refuse_selection(selection, use)
    full = selected._state.wrap(selected._value, selected._concrete)
    where = mask[(Ellipsis,) + (None,) * (full.ndim - k)]
    kept = np.where(where, full, identity)
    # the selection's axis 0 is the mask's k axes of the array; its axis j > 0 is the array's axis k + j - 1
    reduced = tuple(range(k)) + tuple(k + j - 1 for j in (axes or range(ndim)) if j > 0)
    kwargs = {} if dtype is None else {"dtype": dtype}
    if name == "mean":
        total = np.sum(kept, axis=reduced, **kwargs)
        count = np.sum(mask) * int(np.prod([full._concrete.shape[a] for a in reduced[k:]], dtype=np.int64))
        result = np.true_divide(total, count)
        result = result.astype(total.dtype) if result.dtype != total.dtype and total.dtype.kind == "f" else result
    else:
        result = getattr(np, name)(kept, axis=reduced, **kwargs)
    if keepdims:
        result = np.expand_dims(result, tuple(range(ndim)) if axes is None else axes)
    return result


def _same_computation(a: Any, b: Any, depth: int = 4) -> bool:
    """Whether graph values ``a`` and ``b`` are computed alike from the same values: the mask of
    ``x[x > 0] = x[x > 0] ** -1.5`` is written, and computed, twice."""
    if a is b:
        return True
    pa, pb = a.producer, b.producer
    if depth == 0 or pa is None or pb is None or pa.kind != pb.kind or pa.attrs.keys() != pb.attrs.keys() \
            or len(pa.inputs) != len(pb.inputs) or a.type != b.type:
        return False
    for key, value in pa.attrs.items():
        other = pb.attrs[key]
        if type(value) is not type(other) or not (np.array_equal(value, other) if isinstance(value, np.ndarray)
                                                  else value == other):
            return False
    return pa.kind != "prim::Param" and all(_same_computation(u, v, depth - 1) for u, v in zip(pa.inputs, pb.inputs))


def getitem(x: TracedArray, index: Any) -> TracedArray:
    if x._selection is not None:
        raise refuse_selection(x._selection, "an array to index")
    template, arrays, mask = parse_index(x, index)
    if mask is not None and template in ((ops.INDEX_ARRAY,), (ops.INDEX_ARRAY, Ellipsis)) \
            and mask[1]._concrete.shape == x._concrete.shape[:mask[1].ndim]:
        selected = x._state.wrap(x._value, x._concrete)
        selected._selection = Selection(mask[1]._value, user_location(), mask[1])
        return selected
    if mask is not None:
        raise unsupported("x[mask] with a traced boolean mask (its size depends on the data)",
                          "keep the shape with np.where(mask, x, 0), or reduce with np.sum(x, where=...) -> "
                          "np.where(mask, x, 0).sum()")
    if not arrays:
        return record("np::getitem", [x], {"index": template})
    return record("np::gather", [x, *arrays], {"index": template})


@implements(np.take)
def _take(a, indices, axis=None, out=None, mode="raise"):
    _reject_kwargs("take", {"out": out}, out=None)
    a = _proxy(a, indices)
    if axis is None:
        a, axis = a.ravel(), 0
    else:
        axis = ops.normalize_axes(axis, a.ndim, "take")[0]
    if not isinstance(indices, TracedArray):
        indices = _list_index(indices) if isinstance(indices, (list, range)) else np.asarray(indices)
        if indices.dtype.kind not in "iu":
            raise TypeError(f"Cannot cast array data from {indices.dtype!r} to dtype('int64') according to the "
                            f"rule 'safe'")
    n = a._concrete.shape[axis]
    if mode == "wrap":
        indices = np.mod(indices, n)
    elif mode == "clip":
        indices = np.clip(indices, 0, n - 1)
    elif mode != "raise":
        raise ValueError(f"clipmode must be one of 'clip', 'raise', or 'wrap' (got {mode!r})")
    a._state.reads_shape |= mode != "raise"  # wrapped or clipped to this shape: traced again for others
    if not isinstance(indices, TracedArray):
        indices = _constant(a, indices)  # np.take's indices are an array, even a 0-d one: a copy, never a view
    return getitem(a, (slice(None),) * axis + (indices,))


@implements(np.take_along_axis)
def _take_along_axis(arr, indices, axis=-1):
    arr = _proxy(arr, indices)
    if axis is None:
        arr, axis = arr.ravel(), 0
        if np.ndim(_concrete(indices)) != 1:
            raise ValueError("when axis=None, `indices` must have a single dimension.")
    axis = ops.normalize_axes(axis, arr.ndim, "take_along_axis")[0]
    if _concrete(indices).dtype.kind not in "iu":
        raise IndexError("`indices` must be an integer array")
    if np.ndim(_concrete(indices)) != arr.ndim:
        raise ValueError("`indices` and `arr` must have the same number of dimensions")
    shape = arr.shape  # the index arrays below are this shape's: the trace is redone for others
    index = []
    for dim, n in enumerate(shape):
        if dim == axis:
            index.append(indices)
        else:
            index.append(_constant(arr, np.arange(n).reshape([-1 if d == dim else 1 for d in range(len(shape))])))
    return getitem(arr, tuple(index))


def _proxy(a: Any, *others: Any) -> TracedArray:
    """``a`` as a proxy of the trace the others belong to (a captured array becomes a parameter)."""
    if isinstance(a, TracedArray):
        return a
    state = next(o for o in others if isinstance(o, TracedArray))._state
    a = np.asarray(a) if not is_array(a) else a
    return state.wrap(state.value_of(a), a)


# ----------------------------------------------------------------------------- assignment


def setitem(x: TracedArray, index: Any, value: Any) -> None:
    """``x[index] = value``: x takes a new value (see :func:`assign`)."""
    if x._readonly:
        raise ValueError("assignment destination is read-only")
    template, arrays, mask = parse_index(x, index)
    if mask is None and isinstance(value, TracedArray) and value._selection is not None:
        raise refuse_selection(value._selection, "the values of an assignment through another index")
    if isinstance(value, (list, tuple)):
        value = _list_value(value)
    if mask is not None:
        new = _masked(x, template, mask, value)
    elif not arrays and ops.selects_everything(template, x._concrete.shape):
        new = _select(x, True, value, x._concrete.shape)  # x[...] = v: fuses with what reads x
    else:
        if not arrays and isinstance(value, TracedArray) and value._base is x \
                and value._recipe == ("np::getitem", {"index": template}):
            return  # x[s] = x[s], as `x[s] += v` ends: the view has updated x already
        new = record("np::setitem", [x, value, *arrays], {"index": template})
    assign(x, new, "assignment")


def _list_value(value: list | tuple) -> Any:
    if any(isinstance(v, TracedArray) for v in np.ravel(np.asarray(value, object))):
        return np.stack(value)  # traced values in a list: stacked, as np.asarray would
    return np.asarray(value)


def _select(x: TracedArray, where: Any, value: Any, layout: tuple[int, ...]) -> TracedArray:
    """``np.where(where, value, x)``, value cast to x's dtype as an assignment casts it: one elementwise op.

    ``value`` must broadcast to ``layout`` (leading 1s beyond its length may go), which broadcasts to x."""
    dtype, shape = x._concrete.dtype, np.shape(_concrete(value))
    ops.check_assignable(TensorType(dtype, shape), layout)
    kept = shape[max(0, len(shape) - len(layout)):]  # the leading 1s an assignment drops
    if isinstance(value, TracedArray):
        value = value.astype(dtype) if value.dtype != dtype else value
        value = value[(0,) * (len(shape) - len(kept))] if kept != shape else value  # a view at every shape
    else:
        value = np.asarray(value) if is_array(value) else np.array(value, dtype=dtype)  # OverflowError as NumPy
        value = value.astype(dtype).reshape(kept)
        value = value[()] if value.ndim == 0 else value
    return record("np::where", [where, value, x])


def _masked(x: TracedArray, template: tuple, mask: tuple[int, Any], value: Any) -> TracedArray:
    """``x[mask] = value``: a select where the mask is true (``a[a > 0] = 0``). The mask indexes x's leading
    axes (or, after ``...``, its last ones); the values broadcast against the other axes."""
    position, array = mask
    if isinstance(value, TracedArray) and value._selection is not None:
        if not _same_computation(value._selection.mask, array._value) \
                or len(template) > 1 and template[1] is not Ellipsis:
            raise refuse_selection(value._selection, "the values of another assignment")
        whole = value._state.wrap(value._value, value._concrete)  # computed at the array's shape
        where = array[(Ellipsis,) + (None,) * (x.ndim - array.ndim)]
        return _select(x, where, whole, x._concrete.shape)
    others = [item for k, item in enumerate(template) if k != position]
    after_ellipsis = others == [Ellipsis] and position == 1
    if others not in ([], [Ellipsis]):
        raise unsupported("assigning through a traced boolean mask combined with other indices",
                          "write x = np.where(mask, value, x) with a mask of x's shape")
    shape, k = x._concrete.shape, array.ndim
    start = len(shape) - k if after_ellipsis else 0
    _check_mask_shape(shape, start, array._concrete.shape)
    value_shape = np.shape(_concrete(value))
    # NumPy assigns value to x[mask], of shape shape[:start] + (count,) + shape[start + k:]: the axis of value
    # that lines up with the count must be 1 (else the count, which depends on the data, must match)
    count_axis = len(value_shape) - 1 - (len(shape) - start - k)
    if 0 <= count_axis < len(value_shape) and value_shape[count_axis] != 1:
        raise unsupported("assigning an array of values through a traced boolean mask (x[mask] = values: the "
                          "number of values must be the number of True elements, which depends on the data)",
                          "write x = np.where(mask, values, x) with values of x's shape")
    if count_axis >= 0:  # the count axis (1) becomes the mask's axes, as 1s
        spread = (slice(None),) * count_axis + (0,) + (None,) * k + (Ellipsis,)
        value = value[spread] if isinstance(value, TracedArray) else np.asarray(value)[spread]
    where = array if after_ellipsis else array[(Ellipsis,) + (None,) * (len(shape) - k)]
    return _select(x, where, value, shape[:start] + (1,) * k + shape[start + k:])


def ufunc_at(ufunc: np.ufunc, a: Any, indices: Any, b: Any = None) -> None:
    """``np.add.at(a, indices, b)``: every repeated place updated again (``a[indices] += b`` adds once)."""
    name = ops.UFUNC_ALIASES.get(ufunc.__name__, ufunc.__name__)
    if not isinstance(a, TracedArray):
        raise unsupported(f"np.{ufunc.__name__}.at into an array that is not traced (a NumPy array made in the "
                          f"function or captured: the trace cannot update it)",
                          "make it from a traced array, e.g. counts = np.zeros_like(x[0]) for one of x's rows")
    if ufunc.nin != 2 or b is None or f"np::{name}" not in ops.OPS:
        raise unsupported(f"np.{ufunc.__name__}.at", "np.add.at, np.subtract.at, np.multiply.at, np.maximum.at "
                                                     "and other binary ufuncs are traced")
    if a._readonly:
        raise ValueError("output array is read-only")
    template, arrays, mask = parse_index(a, indices)
    if mask is not None:
        raise unsupported(f"np.{ufunc.__name__}.at with a traced boolean mask",
                          f"use np.where(mask, np.{ufunc.__name__}(a, b), a)")
    new = record("np::ufunc_at", [a, b, *arrays], {"ufunc": name, "index": template})
    assign(a, new, f"np.{ufunc.__name__}.at")


# ----------------------------------------------------------------------------- views and updates


def link_views(base: TracedArray, kind: str, attrs: dict, views: list[TracedArray]) -> None:
    """Remember that ``views`` were taken of ``base`` by ``kind``, so assignments to one reach the other."""
    if kind in _RESHAPES and not array_module([base._concrete]).may_share_memory(views[0]._concrete,
                                                                                 base._concrete):
        return  # NumPy copied: the two are independent
    if kind == "np::split":
        axis = ops.normalize_axes(attrs["axis"], base.ndim, "split")[0]
        recipes = [("np::getitem", {"index": (slice(None),) * axis + (slice(start, stop),)})
                   for start, stop in ops.split_bounds(base._concrete.shape[axis], attrs["indices_or_sections"])]
        base._state.reads_shape = True  # the pieces' bounds are this shape's: traced again for others
    else:
        recipes = [(kind, dict(attrs))]
    if base._views is None:
        base._views = weakref.WeakValueDictionary()
    for view, recipe in zip(views, recipes):
        view._base, view._recipe = base, recipe  # held, as NumPy's .base: x[None].squeeze(0) writes into x
        view._readonly = base._readonly or kind in _READ_ONLY_VIEWS
        base._views[id(view)] = view


def assign(target: TracedArray, new: TracedArray, what: str) -> None:
    """Give ``target`` the value ``new`` (its shape and dtype), as NumPy writes into an array: through every
    live array it is a view of, up to the one that owns the memory, then into every live view of that one."""
    while target._base is not None:
        base = target._base
        new = _written_through(base, target._recipe, new)
        target = base
    if target._call_argument:
        raise unsupported(f"{what} on an argument of a submodule call (the caller's array would not see it)",
                          "return the new value from the method instead")
    producer = target._value.producer
    if producer is not None and producer.kind in ("prim::Param", "prim::GetAttr"):
        warnings.warn(f"{what} on a captured array at {user_location()} is traced out of place: the array is "
                      f"not modified by the traced function", TracerWarning, stacklevel=3)
    target._value, target._concrete = new._value, new._concrete
    _rederive(target)


def _written_through(base: TracedArray, recipe: tuple[str, dict], new: TracedArray) -> TracedArray:
    """``base``'s new value when its view taken by ``recipe`` becomes ``new``."""
    kind, attrs = recipe
    if kind == "np::getitem":
        return record("np::setitem", [base, new], {"index": attrs["index"]})
    if kind == "np::transpose":
        return record("np::transpose", [new], {"axes": tuple(int(a) for a in np.argsort(attrs["axes"]))})
    if kind in ("np::T", "np::swapaxes"):
        return record(kind, [new], attrs)
    if kind == "np::expand_dims":
        return record("np::squeeze", [new], {"axis": attrs["axis"]})
    if kind == "np::squeeze":
        axes = attrs.get("axis")
        if axes is None:
            axes = tuple(i for i, n in enumerate(base._concrete.shape) if n == 1)
        return record("np::expand_dims", [new], {"axis": tuple(axes)})
    raise _reshape_view_error(kind)


def _rederive(array: TracedArray) -> None:
    """Take every live view of ``array`` again from its new value (and their views, in turn)."""
    if array._views is None:
        return
    for view in list(array._views.values()):
        kind, attrs = view._recipe
        if kind in _RESHAPES:
            raise _reshape_view_error(kind)
        fresh = record(kind, [array], attrs)
        view._value, view._concrete = fresh._value, fresh._concrete
        _rederive(view)


def _reshape_view_error(kind: str) -> Exception:
    name = "reshape" if kind == "np::reshape" else "ravel"
    return unsupported(f"updating an array and its {name}d view (NumPy's {name} is a view or a copy depending on "
                       f"the memory layout, so which one sees the update depends on the caller's arrays)",
                       f"take the {name} after the update, or a copy: x.{name}(...).copy()")
