"""A call's arguments as a tree, as JAX's pytrees: tuples, lists and dicts nest, and each leaf is

- an array (NumPy or CuPy; a NumPy scalar is a 0-d array of its dtype): a traced input;
- a Python float: a traced 0-d float64 input that stays weakly typed, as NEP 50 makes Python floats
  (``x_f32 * lr`` is float32), so a new learning rate runs the same trace;
- anything else hashable (an int, a bool, a string, None, a module passed as ``xp``, an enum): a static
  value, which the trace may use as Python does; a new value selects another specialisation.
"""
from __future__ import annotations

import inspect
import re
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from .errors import SignatureError, UnsupportedOperationError
from .ir import SUPPORTED_DTYPES
from .tracer import is_array, is_ndarray_subclass, parameter_names

ARRAY, FLOAT, STATIC = "array", "float", "static"


def check_array_argument(x: Any, where: str) -> None:
    """Raise an error naming ``where`` unless ``x`` is an array gputrace can trace (both errors are TypeErrors)."""
    if not is_array(x):
        raise SignatureError(f"{where}: expected a numpy.ndarray or cupy.ndarray, got {type(x).__name__}"
                             + (f" ({x!r})" if isinstance(x, (int, float, bool, type(None))) else ""))
    if is_ndarray_subclass(x):  # np.matrix (a * b is a matrix product), masked arrays
        raise SignatureError(f"{where}: expected a numpy.ndarray or cupy.ndarray, got the ndarray subclass "
                             f"{type(x).__name__}, whose operations gputrace would not trace faithfully; "
                             f"pass np.asarray(x)")
    dtype = np.dtype(x.dtype)
    if dtype.byteorder == ">" or (dtype.byteorder == "=" and not np.little_endian):
        raise UnsupportedOperationError(f"{where}: big-endian arrays ({dtype.str}) are not supported; "
                                        f"convert with x.astype(x.dtype.newbyteorder('='))")
    if dtype.newbyteorder("=") not in SUPPORTED_DTYPES or dtype.fields is not None:
        names = ", ".join(d.name for d in SUPPORTED_DTYPES)
        raise UnsupportedOperationError(f"{where}: dtype {dtype} is not supported; gputrace supports {names}")


@dataclass(frozen=True)
class Leaf:
    kind: str          # ARRAY, FLOAT or STATIC
    value: Any = None  # a static leaf's value


@dataclass(frozen=True)
class Node:
    container: type    # tuple, list, dict, or a namedtuple class
    keys: tuple        # a dict's keys; positions otherwise
    children: tuple


def _flatten(value: Any, label: Callable[[str], str], path: str, leaves: list) -> Leaf | Node:
    """The tree of ``value``; its traced leaves are appended to ``leaves`` as (array, path, kind, converted):
    a path is the keys from the argument down (``['blocks'][3]``), converted says that the array was made
    from a Python float or a NumPy scalar; ``label(path)`` names a leaf in errors."""
    if is_array(value) or isinstance(value, np.generic):
        array = np.asarray(value) if isinstance(value, np.generic) else value
        check_array_argument(array, label(path))
        leaves.append((array, path, ARRAY, isinstance(value, np.generic)))
        return Leaf(ARRAY)
    if isinstance(value, float):
        leaves.append((np.asarray(value, np.float64), path, FLOAT, True))
        return Leaf(FLOAT)
    if isinstance(value, dict):
        keys = tuple(value)
        return Node(dict, keys, tuple(_flatten(value[k], label, f"{path}[{k!r}]", leaves) for k in keys))
    if isinstance(value, (tuple, list)):
        return Node(type(value), tuple(range(len(value))),
                    tuple(_flatten(v, label, f"{path}[{i}]", leaves) for i, v in enumerate(value)))
    try:
        hash(value)
    except TypeError:
        raise SignatureError(f"{label(path)}: a {type(value).__name__} is neither an array, a Python float nor "
                             f"a hashable static value (a static argument selects a specialisation by its value, "
                             f"so it must be hashable); pass a tuple instead of a list or set, or an array") from None
    return Leaf(STATIC, value)


def _rebuild(tree: Leaf | Node, leaves: Iterator[Any]) -> Any:
    if isinstance(tree, Leaf):
        return tree.value if tree.kind == STATIC else next(leaves)
    children = [_rebuild(child, leaves) for child in tree.children]
    if tree.container is dict:
        return dict(zip(tree.keys, children))
    if tree.container in (tuple, list):
        return tree.container(children)
    return tree.container(*children)  # a namedtuple


def _structure(tree: Leaf | Node) -> Any:
    """The tree without its static values: what must not change between calls."""
    if isinstance(tree, Leaf):
        return tree.kind
    return (tree.container, tree.keys, tuple(_structure(c) for c in tree.children))


def _statics(tree: Leaf | Node) -> tuple:
    """The static values with their types: 1 and True are equal, but a trace may take them apart."""
    if isinstance(tree, Leaf):
        return ((type(tree.value), tree.value),) if tree.kind == STATIC else ()
    return sum((_statics(c) for c in tree.children), ())


def _first_difference(want: Leaf | Node, got: Leaf | Node, path: str = "") -> tuple[str, str]:
    """The path to the first place where ``got`` differs in structure from ``want``, and how."""
    if isinstance(want, Node) and isinstance(got, Node) and want.container is got.container \
            and want.keys == got.keys:
        for key, a, b in zip(want.keys, want.children, got.children):
            if _structure(a) != _structure(b):
                return _first_difference(a, b, f"{path}[{key!r}]")
    return path, f"expected {_describe(want)} as traced, got {_describe(got)}"


def _first_static_difference(want: Leaf | Node, got: Leaf | Node, path: str = "") -> tuple | None:
    """The path to the first leaf where ``got`` has another static value (or kind) than ``want``, and both leaves."""
    if isinstance(want, Node) and isinstance(got, Node) and want.container is got.container \
            and want.keys == got.keys:
        for key, a, b in zip(want.keys, want.children, got.children):
            found = _first_static_difference(a, b, f"{path}[{key!r}]")
            if found is not None:
                return found
        return None
    if want != got or (isinstance(want, Leaf) and type(want.value) is not type(got.value)):
        return path, want, got
    return None


def _describe(tree: Leaf | Node) -> str:
    if isinstance(tree, Leaf):
        return {ARRAY: "a numpy.ndarray or cupy.ndarray", FLOAT: "a Python float"}.get(tree.kind) or \
            f"{type(tree.value).__name__} ({tree.value!r})"
    if tree.container is dict:
        return f"a dict with keys {list(tree.keys)}"
    return f"a {tree.container.__name__} of {len(tree.children)}"


def _bind(fn: Any, args: Sequence[Any], kwargs: dict) -> tuple[tuple, dict]:
    """The arguments as Python binds them to ``fn`` (``f(x, lr=0.1)`` is ``f(x, 0.1)``), less those that
    are their parameter's default (``f(x, act="tanh")`` is ``f(x)``): calls that mean the same look the same."""
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):  # no function (a loaded trace) or no signature (a ufunc): as given
        return tuple(args), kwargs
    try:
        bound = signature.bind(*args, **kwargs)
    except TypeError as error:
        raise SignatureError(f"{getattr(fn, '__name__', 'the function')}(): {error}") from None
    for name, value in list(bound.arguments.items()):
        default = signature.parameters[name].default
        if default is not inspect.Parameter.empty and _same_static(value, default):
            del bound.arguments[name]
    return bound.args, bound.kwargs


def _same_static(value: Any, default: Any) -> bool:
    if value is default:
        return True
    if type(value) is not type(default) or is_array(value) or isinstance(value, (dict, list, np.generic)):
        return False
    try:
        return bool(value == default) and hash(value) == hash(default)
    except TypeError:
        return False


class Call:
    """One call's arguments: a tree per argument, the arrays at the traced leaves (a Python float as a 0-d
    float64 array), their paths (``params['blocks'][3]['w']``) and which leaves are Python floats.

    ``where`` names the arguments in errors: ``example_inputs`` gives ``example_inputs[0]['w']``; None, a
    call's, gives ``argument 'params' (position 0)['w']``."""

    def __init__(self, fn: Any, args: Sequence[Any], kwargs: dict | None = None, where: str | None = None):
        self.fn = fn  # what the arguments bind to: the function, or a loaded trace's saved signature
        args, kwargs = _bind(fn, args, kwargs or {})
        self.positional = len(args)
        self.roots = parameter_names(fn, len(args)) + list(kwargs)
        self.labels = [(f"{where}[{i}]" if i < len(args) else f"{where}_kwargs[{name!r}]") if where else
                       (f"argument '{name}' (position {i})" if i < len(args) else f"argument '{name}'")
                       for i, name in enumerate(self.roots)]
        found: list[tuple[Any, str, str, bool]] = []
        trees, roots = [], []
        for k, value in enumerate(list(args) + list(kwargs.values())):
            before = len(found)
            trees.append(_flatten(value, lambda path, k=k: self.labels[k] + path, "", found))
            roots += [k] * (len(found) - before)
        self.trees = tuple(trees)
        self.leaves = [leaf[0] for leaf in found]
        self.paths = [self.roots[k] + leaf[1] for k, leaf in zip(roots, found)]
        self.where = [self.labels[k] + leaf[1] for k, leaf in zip(roots, found)]  # each leaf's name in errors
        self.weak = [leaf[2] == FLOAT for leaf in found]
        self.converted = [leaf[3] for leaf in found]  # scalars made arrays: on whichever device the rest is

    @property
    def names(self) -> list[str]:
        """Graph input names: params['w1'][0] -> params_w1_0."""
        return [re.sub(r"\W+", "_", path).strip("_") or "input" for path in self.paths]

    @property
    def structure(self) -> Any:
        return tuple(self.roots), self.positional, tuple(_structure(t) for t in self.trees)

    @property
    def statics(self) -> tuple:
        return sum((_statics(t) for t in self.trees), ())

    @property
    def specialization(self) -> tuple:
        """What selects a trace besides the arrays' shapes: which arguments are passed, how they nest, and
        the static values."""
        return self.structure, self.statics

    def is_plain(self) -> bool:
        """Only arrays, passed by position: the calling convention of ``traced(x, h)``."""
        return self.positional == len(self.trees) and all(t == Leaf(ARRAY) for t in self.trees)

    def rebuild(self, leaves: Sequence[Any], python_floats: bool = False) -> tuple[tuple, dict]:
        """The positional and keyword arguments with ``leaves`` at the traced leaves (Python floats again
        where they were, with ``python_floats``: for running the function eagerly)."""
        if python_floats:
            leaves = [float(x) if weak else x for x, weak in zip(leaves, self.weak)]
        it = iter(leaves)
        values = [_rebuild(t, it) for t in self.trees]
        return tuple(values[:self.positional]), dict(zip(self.roots[self.positional:], values[self.positional:]))

    def check_structure(self, traced: "Call") -> None:
        """Raise SignatureError, naming the first leaf that differs, where an argument that this call and
        the traced one both pass nests otherwise (arguments passed in one of them only make another
        specialisation)."""
        traced_trees = dict(zip(traced.roots, traced.trees))
        for k, (root, got) in enumerate(zip(self.roots, self.trees)):
            want = traced_trees.get(root)
            if want is not None and _structure(want) != _structure(got) and \
                    {_structure(want), _structure(got)} != {STATIC, FLOAT}:  # lr=1 after lr=0.1: another trace
                path, how = _first_difference(want, got)
                raise SignatureError(f"{self.labels[k]}{path}: {how}; the arguments must nest as they did when "
                                     f"traced (trace the function again for another structure)")

    def difference(self, traced: "Call") -> str:
        """How this call selects another trace than ``traced``: an argument that one of them passes only, or
        the first static value (or Python float) where the other has another."""
        mine = dict(zip(self.roots, self.trees))
        missing = [root for root in traced.roots if root not in mine]
        if missing:
            return f"argument '{missing[0]}' is not passed, where the traced call passed it"
        traced_trees = dict(zip(traced.roots, traced.trees))
        for label, root, got in zip(self.labels, self.roots, self.trees):
            if root not in traced_trees:
                default = _default(traced.fn, root)
                return f"{label} is passed, where the traced call left it to its default" + \
                    (f" ({default!r})" if default is not inspect.Parameter.empty else "")
            found = _first_static_difference(traced_trees[root], got)
            if found is not None:
                path, want, got = found
                return f"{label}{path} is {_describe(got)} where it was {_describe(want)} when traced"
        return "its arguments are passed otherwise than when traced"


def _default(fn: Any, name: str) -> Any:
    try:
        return inspect.signature(fn).parameters[name].default
    except (TypeError, ValueError, KeyError):
        return inspect.Parameter.empty
