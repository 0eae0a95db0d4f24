"""Save and load traces: one zip with ``graph.json`` and ``params.npz``.

The graph saved is the frozen one (modules inlined, parameters by dotted
name), with the traces made again for other input shapes (a function that
reads shapes is re-specialised per shape), so that a loaded or unpickled
trace runs those shapes without the Python function, and the traced call (how its
arguments nest, the function's signature), so that it is called as the function
was. Loading never executes anything from the file: JSON is parsed into
plain values, arrays are read with ``allow_pickle=False``, every op must be in
the op table, and every node's types are re-inferred and must match the
stored ones. Anything else raises :class:`GraphFormatError`.
"""
from __future__ import annotations

import hashlib
import inspect
import io
import json
import math
import struct
import zipfile
import zlib
from pathlib import Path
from typing import Any, BinaryIO, Iterator

import numpy as np

from . import ops
from .arguments import ARRAY, FLOAT, STATIC, Call, Leaf, Node
from .errors import GraphFormatError, SignatureError, UnsupportedOperationError
from .ir import NONE_TYPE, SUPPORTED_DTYPES, Graph, ObjectType, ScalarType, TensorType, Type, SourceLocation

FORMAT = "gputrace-trace"
VERSION = 1
MAX_MEMBER_BYTES = 1 << 32       # refuse members that would unpack to more than 4 GiB
MAX_COMPRESSION_RATIO = 1000     # refuse zip bombs
MAX_NDIM = 64
MAX_DIM = 1 << 48
MAX_NODES = 1_000_000
MAX_DEPTH = 32                   # attributes, output trees and arguments nest at most this deep
_MEMBERS = {"graph.json", "params.npz"}
_SCALAR_KINDS = {"bool": bool, "int": int, "float": float}
_DTYPES = {d.name: d for d in SUPPORTED_DTYPES}


# ----------------------------------------------------------------------------- encoding


def _encode_value(value: Any, arrays: dict[str, np.ndarray]) -> Any:
    if isinstance(value, np.generic):  # before float: np.float64 is a Python float too, but keeps its dtype
        return {"scalar": value.dtype.name, "value": _encode_value(value.item(), arrays)}
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return {"int": str(value)} if abs(value) >= 2**53 else value
    if isinstance(value, float):
        return value if math.isfinite(value) else {"float": repr(value)}
    if isinstance(value, np.dtype):
        return {"dtype": value.name}
    if isinstance(value, np.ndarray):
        key = f"const{len(arrays)}"
        arrays[key] = value
        return {"array": key}
    if isinstance(value, slice):
        return {"slice": [value.start, value.stop, value.step]}
    if value is Ellipsis:
        return {"ellipsis": True}
    if isinstance(value, tuple):
        return {"tuple": [_encode_value(v, arrays) for v in value]}
    raise GraphFormatError(f"cannot save an attribute of type {type(value).__name__}: {value!r}")


def _encode_type(t: Type) -> Any:
    if isinstance(t, TensorType):
        return {"tensor": t.dtype.name, "shape": list(t.shape), "strides": list(t.strides), "device": t.device}
    if isinstance(t, ScalarType):
        return {"scalar": t.kind.__name__}
    return {"object": t.name}


def _encode_graph(graph: Graph, arrays: dict[str, np.ndarray]) -> dict:
    index: dict[int, int] = {}
    for i, v in enumerate(graph.inputs):
        index[id(v)] = i
    nodes = []
    counter = len(graph.inputs)
    for node in graph.nodes:
        entry = {"kind": node.kind, "inputs": [index[id(v)] for v in node.inputs],
                 "attrs": {k: _encode_value(v, arrays) for k, v in node.attrs.items()},
                 "outputs": [{"name": v.name, "type": _encode_type(v.type)} for v in node.outputs]}
        if node.source is not None:
            entry["source"] = [node.source.filename, node.source.line, node.source.col]
        if node.subgraph is not None:
            entry["subgraph"] = _encode_graph(node.subgraph, arrays)
        for v in node.outputs:
            index[id(v)] = counter
            counter += 1
        nodes.append(entry)
    return {"name": graph.name, "inputs": [{"name": v.name, "type": _encode_type(v.type)} for v in graph.inputs],
            "nodes": nodes, "outputs": [index[id(v)] for v in graph.outputs],
            "meta": {"output_tree": graph.meta.get("output_tree", 0), "reads_shape": bool(graph.meta.get("reads_shape")),
                     "updated_inputs": list(graph.meta.get("updated_inputs", ()))}}


# The traced call: how its arguments nest (dicts, lists, tuples; arrays, Python floats, static values) and the
# function's signature, so that a loaded trace binds calls as the function does.
_KEY_TYPES = (str, int, bool, type(None))
_STATIC_TYPES = (type(None), bool, int, float, str)
_SCALAR_TYPES = {d.type: d.name for d in SUPPORTED_DTYPES}  # dtype=np.float32
_PARAMETER_KINDS = {kind.name: kind for kind in type(inspect.Parameter.POSITIONAL_ONLY)}
_SAVEABLE = ("a saved trace keeps dicts (with str, int, bool or None keys), lists and tuples of arrays, Python floats "
             "and static values that are None, bool, int, float, str, NumPy dtypes or scalar types, or tuples of those")


class SavedSignature:
    """A loaded trace's stand-in for its Python function where calls are bound (``inspect.signature`` reads
    ``__signature__``): parameter names, kinds and defaults, and nothing to run."""

    def __init__(self, name: str, signature: inspect.Signature):
        self.__name__ = name
        self.__signature__ = signature

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(f"{self.__name__}: a loaded trace has the signature of its Python function, not the function")


class _UnsavedDefault:
    """A default that is not a saveable static value (a module, an array): it equals no argument, so a call
    that passes that parameter selects another trace, which a loaded trace cannot make."""

    def __init__(self, what: str):
        self.what = what

    def __repr__(self) -> str:
        return f"<{self.what}, not saved>"


def _saveable_static(value: Any) -> bool:
    """Whether ``value`` loads back as an equal value of its very type: static arguments select traces by both."""
    if type(value) is tuple:
        return all(_saveable_static(v) for v in value)
    if isinstance(value, np.generic):
        value = value.dtype
    return type(value) in _STATIC_TYPES or _is_scalar_type(value) or \
        (isinstance(value, np.dtype) and _DTYPES.get(value.name) == value)  # not '>f4', which loads as float32


def _is_scalar_type(value: Any) -> bool:
    return isinstance(value, type) and value in _SCALAR_TYPES


def _encode_static(value: Any) -> Any:
    if _is_scalar_type(value):
        return {"type": _SCALAR_TYPES[value]}
    if type(value) is tuple:
        return {"tuple": [_encode_static(v) for v in value]}
    return _encode_value(value, {})


def _what(value: Any) -> str:
    if inspect.ismodule(value):
        return f"the module {value.__name__}"
    return f"a {type(value).__qualname__} ({str(value)[:60]})"


def _unsaveable(path: str, what: str) -> UnsupportedOperationError:
    return UnsupportedOperationError(f"save: {path} is {what}, which cannot be saved: {_SAVEABLE}; make it a default "
                                     f"or a global of the function, or trace a function of saveable arguments")


def _encode_tree(tree: Leaf | Node, path: str, depth: int = 0) -> Any:
    if depth > MAX_DEPTH:
        raise _unsaveable(path, f"nested more than {MAX_DEPTH} deep")
    if isinstance(tree, Leaf):
        if tree.kind != STATIC:
            return tree.kind
        if not _saveable_static(tree.value):
            raise _unsaveable(path, f"the static value {_what(tree.value)}")
        return {"static": _encode_static(tree.value)}
    if tree.container is dict:
        for key in tree.keys:
            if type(key) not in _KEY_TYPES:
                raise _unsaveable(f"{path}[{key!r}]", f"a dict key of type {type(key).__qualname__}")
        return {"dict": [[_encode_value(key, {}), _encode_tree(child, f"{path}[{key!r}]", depth + 1)]
                         for key, child in zip(tree.keys, tree.children)]}
    if tree.container not in (list, tuple):
        raise _unsaveable(path, f"a {'namedtuple' if hasattr(tree.container, '_fields') else 'container'} "
                                f"{tree.container.__qualname__}")
    return {tree.container.__name__: [_encode_tree(child, f"{path}[{i}]", depth + 1)
                                      for i, child in enumerate(tree.children)]}


def _encode_signature(fn: Any) -> list | None:
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):  # none (a ufunc): calls bind as given
        return None
    parameters = []
    for p in signature.parameters.values():
        entry = {"name": p.name, "kind": p.kind.name}
        if isinstance(p.default, _UnsavedDefault):
            entry["unsaved_default"] = p.default.what
        elif p.default is not p.empty:
            if _saveable_static(p.default):
                entry["default"] = _encode_static(p.default)
            else:
                entry["unsaved_default"] = _what(p.default)
        parameters.append(entry)
    return parameters


def _encode_call(call: Call) -> dict:
    keywords = call.roots[call.positional:]
    bad = next((k for k in keywords if not k.isidentifier()), None)
    if bad is not None:
        raise UnsupportedOperationError(f"save: the keyword argument {bad!r} is not an identifier; pass it otherwise")
    return {"signature": _encode_signature(call.fn), "positional": call.positional, "keywords": keywords,
            "arguments": [_encode_tree(tree, root) for root, tree in zip(call.roots, call.trees)]}


def save(traced: Any, path: str | Path | BinaryIO) -> None:
    """Write ``traced`` (a TracedFunction or TracedModule) to ``path``.

    The traced call's arguments are saved as they nest (dicts, lists and tuples of arrays, Python floats and
    static values) with the function's signature, so the loaded trace is called as the function was: by keyword,
    with a new Python float, with the static values it was traced with (another value needs the function and
    raises). A static value or container that cannot be saved (a module passed as ``xp``, an enum, a namedtuple)
    raises UnsupportedOperationError naming the argument.

    >>> import numpy as np, gputrace, tempfile, os
    >>> f = gputrace.trace(lambda x: x * 2, np.ones(3, np.float32))
    >>> p = os.path.join(tempfile.mkdtemp(), "f.gpt"); gputrace.save(f, p)
    >>> gputrace.load(p)(np.ones(3, np.float32))
    array([2., 2., 2.], dtype=float32)
    """
    from .traced import TracedFunction, TracedModule
    if isinstance(traced, TracedModule):
        traced = traced.methods["forward"]
    if not isinstance(traced, TracedFunction):
        raise TypeError(f"save(traced): expected a TracedFunction or TracedModule, got {type(traced).__name__}")
    call = _encode_call(traced.call) if traced.call is not None else None
    arrays: dict[str, np.ndarray] = {}
    graph = _encode_graph(traced.frozen_graph, arrays)
    params = {name: np.asarray(ops.to_host(array)) for name, array in traced.params.items()}
    stored = {f"param:{k}": v for k, v in params.items()}
    specializations = []
    for graph_k, read in traced.specializations():
        names = {}
        for node in graph_k.nodes:
            if node.kind == "prim::Param":
                name = node.attrs["name"]
                array = read(name)
                if name in params and array is traced.param(name):  # a module's weights: stored once
                    names[name] = f"param:{name}"
                else:
                    names[name] = stored_key = f"spec{len(specializations)}:{name}"
                    stored[stored_key] = np.asarray(ops.to_host(array))
        specializations.append({"graph": _encode_graph(graph_k, arrays), "params": names})
    document = {"format": FORMAT, "version": VERSION, "name": traced.name, "graph": graph,
                "params": sorted(params), "constants": sorted(arrays)}
    if specializations:  # optional: a file without them is what earlier versions wrote
        document["specializations"] = specializations
    if call is not None:  # optional too: a trace loaded without it takes arrays by position
        document["call"] = call
    buffer = io.BytesIO()
    np.savez(buffer, **stored, **{f"const:{k}": v for k, v in arrays.items()})
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("graph.json", json.dumps(document, indent=1))
        archive.writestr("params.npz", buffer.getvalue())


def dumps(traced: Any) -> bytes:
    """The bytes :func:`save` writes: how a TracedFunction pickles (to ship it to Dask workers, say)."""
    buffer = io.BytesIO()
    save(traced, buffer)
    return buffer.getvalue()


_UNPICKLED: dict[bytes, Any] = {}  # digest -> TracedFunction: one per process, so its compiled programs are reused


def loads(data: bytes) -> Any:
    """A TracedFunction from :func:`dumps`'s bytes; the same bytes give the same object in one process."""
    key = hashlib.sha256(data).digest()
    traced = _UNPICKLED.get(key)
    if traced is None:
        if len(_UNPICKLED) >= 256:
            del _UNPICKLED[next(iter(_UNPICKLED))]
        traced = _UNPICKLED.setdefault(key, load(io.BytesIO(data)))
    return traced


# ----------------------------------------------------------------------------- decoding


def _fail(message: str) -> GraphFormatError:
    return GraphFormatError(f"not a valid gputrace file: {message}")


def _decode_int(value: Any, what: str, low: int = -(1 << 64), high: int = 1 << 64) -> int:
    if isinstance(value, dict) and set(value) == {"int"} and isinstance(value["int"], str):
        try:
            value = int(value["int"])
        except ValueError:
            raise _fail(f"{what} is not an integer") from None
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value < high:
        raise _fail(f"{what} must be an integer in [{low}, {high}), got {value!r}")
    return value


def _decode_value(value: Any, arrays: dict[str, np.ndarray], depth: int = 0) -> Any:
    if depth > MAX_DEPTH:
        raise _fail("attributes nest too deeply")
    if value is None or isinstance(value, (bool, str, float)):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, dict):
        if set(value) == {"int"}:
            return _decode_int(value, "an integer attribute")
        if set(value) == {"float"} and value["float"] in ("inf", "-inf", "nan"):
            return float(value["float"])
        if set(value) == {"dtype"}:
            return _decode_dtype(value["dtype"])
        if set(value) == {"scalar", "value"}:
            dtype = _decode_dtype(value["scalar"])
            inner = _decode_value(value["value"], arrays, depth + 1)
            if not isinstance(inner, (bool, int, float)):
                raise _fail("a scalar attribute holds a non-number")
            return dtype.type(inner)
        if set(value) == {"array"}:
            if value["array"] not in arrays:
                raise _fail(f"constant {value['array']!r} is missing from params.npz")
            return arrays[value["array"]]
        if set(value) == {"slice"} and isinstance(value["slice"], list) and len(value["slice"]) == 3:
            parts = [None if p is None else _decode_int(p, "a slice bound") for p in value["slice"]]
            return slice(*parts)
        if set(value) == {"ellipsis"}:
            return Ellipsis
        if set(value) == {"tuple"} and isinstance(value["tuple"], list):
            return tuple(_decode_value(v, arrays, depth + 1) for v in value["tuple"])
    raise _fail(f"unrecognised attribute {str(value)[:80]}")


def _decode_dtype(name: Any) -> np.dtype:
    if not isinstance(name, str) or name not in _DTYPES:
        raise _fail(f"unsupported dtype {str(name)[:40]!r}")
    return _DTYPES[name]


def _decode_type(entry: Any) -> Type:
    if not isinstance(entry, dict):
        raise _fail("a type is not an object")
    if "tensor" in entry:
        shape, strides = entry.get("shape"), entry.get("strides")
        if not isinstance(shape, list) or not isinstance(strides, list) or len(shape) != len(strides) \
                or len(shape) > MAX_NDIM:
            raise _fail("a tensor type has a bad shape or strides")
        shape = [_decode_int(s, "a dimension", 0, MAX_DIM) for s in shape]
        strides = [_decode_int(s, "a stride", -MAX_DIM, MAX_DIM) for s in strides]
        if int(np.prod(shape, dtype=object)) >= MAX_DIM:
            raise _fail(f"a tensor of shape {shape} is too large")
        device = entry.get("device", "cpu")
        if not isinstance(device, str) or not (device == "cpu" or device.startswith("cuda:")):
            raise _fail(f"unknown device {str(device)[:40]!r}")
        return TensorType(_decode_dtype(entry["tensor"]), tuple(shape), tuple(strides), device)
    if "scalar" in entry and isinstance(entry["scalar"], str) and entry["scalar"] in _SCALAR_KINDS:
        return ScalarType(_SCALAR_KINDS[entry["scalar"]])
    if "object" in entry and isinstance(entry["object"], str):
        return NONE_TYPE if entry["object"] == "NoneType" else ObjectType(entry["object"][:200])
    raise _fail("unrecognised type")


def _decode_graph(data: Any, arrays: dict[str, np.ndarray], budget: list[int]) -> Graph:
    if not isinstance(data, dict) or not isinstance(data.get("nodes"), list) or not isinstance(data.get("inputs"), list):
        raise _fail("the graph is not an object with inputs and nodes")
    graph = Graph(str(data.get("name", "forward"))[:100])
    values = []
    for entry in data["inputs"]:
        if not isinstance(entry, dict):
            raise _fail("a graph input is not an object")
        values.append(graph.add_input(_decode_type(entry.get("type")), str(entry.get("name", ""))[:100] or None))
        if not isinstance(values[-1].type, TensorType):  # saved graphs are frozen: no module input
            raise _fail("the graph's inputs must all be arrays")
    for entry in data["nodes"]:
        budget[0] -= 1
        if budget[0] < 0:
            raise _fail("too many nodes")
        if not isinstance(entry, dict):
            raise _fail("a node is not an object")
        kind = entry.get("kind")
        if not isinstance(kind, str) or kind not in ops.OPS and kind not in ("prim::Constant", "prim::Param",
                                                                             "gt::FusionGroup"):
            raise _fail(f"unknown op {str(kind)[:60]!r}")
        inputs = entry.get("inputs")
        if not isinstance(inputs, list) or not all(isinstance(i, int) and 0 <= i < len(values) for i in inputs):
            raise _fail(f"{kind} refers to an undefined value")
        attrs = entry.get("attrs", {})
        if not isinstance(attrs, dict):
            raise _fail(f"{kind} has bad attributes")
        if not all(k.isidentifier() for k in attrs):  # keys become keyword arguments in .code
            raise _fail(f"{kind} has an attribute name that is not an identifier")
        attrs = {k: _decode_value(v, arrays) for k, v in attrs.items()}
        outputs = entry.get("outputs")
        if not isinstance(outputs, list) or not all(isinstance(o, dict) for o in outputs):
            raise _fail(f"{kind} has bad outputs")
        types = [_decode_type(o.get("type")) for o in outputs]
        if ("subgraph" in entry) != (kind == "gt::FusionGroup"):
            raise _fail(f"{kind} {'has' if 'subgraph' in entry else 'lacks'} a subgraph")
        subgraph = _decode_graph(entry["subgraph"], arrays, budget) if "subgraph" in entry else None
        source = entry.get("source")
        location = None
        if isinstance(source, list) and len(source) == 3 and isinstance(source[0], str):
            location = SourceLocation(source[0][:500], _decode_int(source[1], "a line"), _decode_int(source[2], "a col"))
        node = graph.add_node(kind, [values[i] for i in inputs], types, attrs=attrs, source=location,
                              subgraph=subgraph, output_names=[str(o.get("name", ""))[:100] or None for o in outputs])
        _check_node(node)
        values.extend(node.outputs)
    outputs = data.get("outputs")
    if not isinstance(outputs, list) or not all(isinstance(i, int) and 0 <= i < len(values) for i in outputs):
        raise _fail("the graph outputs refer to undefined values")
    graph.outputs = [values[i] for i in outputs]
    meta = data.get("meta", {})
    tree = meta.get("output_tree", 0) if isinstance(meta, dict) else 0
    _check_tree(tree, len(graph.outputs))
    graph.meta["output_tree"] = tree
    graph.meta["reads_shape"] = bool(meta.get("reads_shape", False)) if isinstance(meta, dict) else False
    updated = meta.get("updated_inputs", []) if isinstance(meta, dict) else []
    if not isinstance(updated, list) or len(updated) > len(graph.outputs) or len(set(updated)) != len(updated) or \
            not all(isinstance(i, int) and not isinstance(i, bool) and 0 <= i < len(graph.inputs) for i in updated):
        raise _fail("the inputs updated in place are not distinct inputs")
    if updated:
        graph.meta["updated_inputs"] = updated
    return graph


def _decode_static(value: Any, depth: int) -> Any:
    if isinstance(value, dict) and set(value) == {"type"}:
        return _decode_dtype(value["type"]).type
    if isinstance(value, dict) and set(value) == {"tuple"} and isinstance(value["tuple"], list) and depth <= MAX_DEPTH:
        return tuple(_decode_static(v, depth + 1) for v in value["tuple"])
    return _decode_value(value, {}, depth)


def _decode_signature(entries: Any, name: str) -> SavedSignature | None:
    if entries is None:
        return None
    if not isinstance(entries, list) or len(entries) > 10_000:
        raise _fail("the call's signature is not a list of parameters")
    parameters = []
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str) or \
                not isinstance(entry.get("kind"), str) or entry["kind"] not in _PARAMETER_KINDS:
            raise _fail("a parameter of the call's signature is not an object with a name and a kind")
        if not entry["name"].isidentifier():
            raise _fail(f"the call's signature has a parameter name that is not an identifier: {entry['name'][:40]!r}")
        default = inspect.Parameter.empty
        if "default" in entry:
            default = _decode_static(entry["default"], 0)
        elif "unsaved_default" in entry:
            default = _UnsavedDefault(str(entry["unsaved_default"])[:200])
        try:  # the name must not be a keyword
            parameters.append(inspect.Parameter(entry["name"], _PARAMETER_KINDS[entry["kind"]], default=default))
        except ValueError as error:
            raise _fail(f"the call's signature has a bad parameter: {str(error)[:100]}") from None
    try:
        return SavedSignature(name, inspect.Signature(parameters))
    except ValueError as error:
        raise _fail(f"the call's signature is not valid: {str(error)[:100]}") from None


def _decode_argument(entry: Any, inputs: Iterator[TensorType], budget: list[int], depth: int = 0) -> Any:
    """A saved argument with stand-ins at its traced leaves, of the graph inputs' types in order: zeros
    broadcast to the input's shape (no memory), 0.0 for a Python float."""
    budget[0] -= 1
    if budget[0] < 0 or depth > MAX_DEPTH:
        raise _fail("the call's arguments nest too deeply or are too many")
    if entry in (ARRAY, FLOAT):
        t = next(inputs, None)
        if t is None:
            raise _fail("the call has more arrays than the graph has inputs")
        if entry == FLOAT:
            if t.dtype != np.float64 or t.ndim:
                raise _fail(f"a Python float argument is the graph input {t}, not a 0-d float64 one")
            return 0.0
        return np.broadcast_to(np.zeros((), t.dtype), t.shape)
    if isinstance(entry, dict) and len(entry) == 1:
        (kind, items), = entry.items()
        if kind == STATIC:
            return _decode_static(items, depth)
        if kind in ("list", "tuple") and isinstance(items, list):
            children = [_decode_argument(e, inputs, budget, depth + 1) for e in items]
            return children if kind == "list" else tuple(children)
        if kind == "dict" and isinstance(items, list) and all(isinstance(i, list) and len(i) == 2 for i in items):
            keys = [_decode_value(key, {}, depth) for key, _ in items]
            if not all(type(key) in _KEY_TYPES for key in keys) or len(dict.fromkeys(keys)) != len(keys):
                raise _fail("a dict argument has keys that are not distinct str, int, bool or None")
            return {key: _decode_argument(e, inputs, budget, depth + 1) for key, (_, e) in zip(keys, items)}
    raise _fail(f"unrecognised argument {str(entry)[:80]}")


def _decode_call(entry: Any, graph: Graph, name: str, budget: list[int]) -> Call:
    """The traced call, bound to the saved signature as the function bound it: its arrays must be the graph's inputs."""
    if not isinstance(entry, dict) or not isinstance(entry.get("arguments"), list):
        raise _fail("the call is not an object with arguments")
    arguments, positional, keywords = entry["arguments"], entry.get("positional"), entry.get("keywords")
    if not isinstance(positional, int) or isinstance(positional, bool) or not 0 <= positional <= len(arguments) or \
            not isinstance(keywords, list) or len(keywords) != len(arguments) - positional or \
            not all(isinstance(k, str) and k.isidentifier() for k in keywords):
        raise _fail("the call's positional count or keyword names do not fit its arguments")
    fn = _decode_signature(entry.get("signature"), name)
    inputs = iter([v.type for v in graph.inputs])
    values = [_decode_argument(a, inputs, budget) for a in arguments]
    if next(inputs, None) is not None:
        raise _fail("the call has fewer arrays than the graph has inputs")
    try:
        call = Call(fn, values[:positional], dict(zip(keywords, values[positional:])))
    except (SignatureError, UnsupportedOperationError) as error:
        raise _fail(f"the call's arguments do not bind to its signature ({str(error)[:100]})") from None
    if call.positional != positional or call.roots[positional:] != keywords or \
            [(x.dtype, x.shape) for x in call.leaves] != [(v.type.dtype, v.type.shape) for v in graph.inputs]:
        raise _fail("the call's arguments do not bind to its signature as saved")
    return call


def _check_tree(tree: Any, count: int, depth: int = 0) -> None:
    if depth > MAX_DEPTH:
        raise _fail("the output tree nests too deeply")
    if isinstance(tree, int) and not isinstance(tree, bool):
        if not 0 <= tree < max(count, 1):
            raise _fail("the output tree refers to a missing output")
        return
    if isinstance(tree, dict) and len(tree) == 1:
        (kind, items), = tree.items()
        if kind in ("tuple", "list") and isinstance(items, list):
            for t in items:
                _check_tree(t, count, depth + 1)
            return
        if kind == "dict" and isinstance(items, dict):
            for t in items.values():
                _check_tree(t, count, depth + 1)
            return
    raise _fail("bad output tree")


def _check_node(node) -> None:
    """The stored types must be what the op table infers: a hand-edited file cannot lie about shapes."""
    if node.kind in ("prim::Constant", "prim::Param") and (node.inputs or len(node.outputs) != 1):
        raise _fail(f"{node.kind} must have no inputs and one output")
    if node.kind == "prim::Param":
        if not isinstance(node.attrs.get("name"), str):
            raise _fail("a parameter has no name")
        return
    if node.kind == "prim::Constant":
        if "value" not in node.attrs or not _constant_fits(node.attrs["value"], node.output.type):
            raise _fail(f"a constant's value does not match its type {node.output.type}")
        return
    if node.kind == "gt::FusionGroup":
        sub = node.subgraph
        if [str(v.type) for v in sub.inputs] != [str(v.type) for v in node.inputs] or \
                [str(v.type) for v in sub.outputs] != [str(v.type) for v in node.outputs]:
            raise _fail("a fusion group's subgraph does not match the group's inputs and outputs")
        return
    accepted = inspect.signature(ops.lookup(node.kind).impl).parameters
    if not any(p.kind == p.VAR_KEYWORD for p in accepted.values()) and not set(node.attrs) <= set(accepted):
        raise _fail(f"{node.kind} has attributes it does not take: {sorted(set(node.attrs) - set(accepted))[:5]}")
    try:
        inferred = ops.infer_types(node.kind, [v.type for v in node.inputs], node.attrs)
    except Exception as exc:  # any failing rule means the file is inconsistent
        raise _fail(f"{node.kind} does not type-check: {exc}") from None
    if [str(t) for t in inferred] != [str(v.type) for v in node.outputs]:
        raise _fail(f"{node.kind} claims types {[str(v.type) for v in node.outputs]} but its inputs give "
                    f"{[str(t) for t in inferred]}")


def _constant_fits(value: Any, t: Type) -> bool:
    if isinstance(t, ScalarType):
        return type(value) is t.kind
    if isinstance(t, TensorType):
        return isinstance(value, (np.ndarray, np.generic)) and value.dtype == t.dtype and value.shape == t.shape
    return t == NONE_TYPE and value is None


def _check_unpacked_size(info: zipfile.ZipInfo, name: str) -> None:
    if info.file_size > MAX_MEMBER_BYTES or info.file_size > MAX_COMPRESSION_RATIO * max(info.compress_size, 1) + 4096:
        raise _fail(f"{name} would unpack to {info.file_size} bytes (compressed {info.compress_size}): refusing")


def _read_member(archive: zipfile.ZipFile, name: str) -> bytes:
    info = archive.getinfo(name)
    _check_unpacked_size(info, name)
    with archive.open(info) as member:
        data = member.read(MAX_MEMBER_BYTES + 1)
    if len(data) != info.file_size:
        raise _fail(f"{name} is truncated or its size is misdeclared")
    return data


def load(path: str | Path | BinaryIO):
    """Read a trace written by :func:`save`; returns a TracedFunction that runs without the Python code."""
    from .traced import TracedFunction
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            if sorted(names) != sorted(_MEMBERS):  # a list: a member stored twice is refused too
                raise _fail(f"expected members {sorted(_MEMBERS)}, found {sorted(names)[:10]}")
            document_bytes = _read_member(archive, "graph.json")
            npz_bytes = _read_member(archive, "params.npz")
    except GraphFormatError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, OSError, EOFError, ValueError, KeyError,
            NotImplementedError, RuntimeError, struct.error) as exc:  # RuntimeError: "encrypted" flag set
        if isinstance(exc, FileNotFoundError):
            raise
        raise _fail(f"{path} is not a readable zip archive ({exc})") from None
    try:
        document = json.loads(document_bytes.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise _fail(f"graph.json is not valid JSON ({exc})") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise _fail("graph.json is not a gputrace trace")
    if document.get("version") != VERSION:
        raise GraphFormatError(f"this file has format version {document.get('version')!r}; this gputrace reads "
                               f"version {VERSION}: re-save the trace with this version")
    try:
        with zipfile.ZipFile(io.BytesIO(npz_bytes)) as inner:  # np.load trusts the sizes inside: check them
            for info in inner.infolist():
                _check_unpacked_size(info, f"params.npz/{info.filename[:60]}")
        with np.load(io.BytesIO(npz_bytes), allow_pickle=False) as npz:
            stored = {}
            for key in npz.files:
                array = npz[key]
                if array.dtype not in SUPPORTED_DTYPES:
                    raise _fail(f"array {key!r} has unsupported dtype {array.dtype}")
                stored[key] = array
    except GraphFormatError:
        raise
    except Exception as exc:  # np.load raises many types on hostile input; none may escape unexplained
        raise _fail(f"params.npz is not a valid array archive ({type(exc).__name__}: {exc})") from None
    params = {k[len("param:"):]: v for k, v in stored.items() if k.startswith("param:")}
    constants = {k[len("const:"):]: v for k, v in stored.items() if k.startswith("const:")}
    budget = [MAX_NODES]
    graph = _decode_graph(document.get("graph"), constants, budget)
    _check_params(graph, params)
    specializations = document.get("specializations", [])
    if not isinstance(specializations, list):
        raise _fail("the specializations are not a list")
    retraced = []
    for entry in specializations:
        if not isinstance(entry, dict) or not isinstance(entry.get("params"), dict) or \
                not all(isinstance(k, str) for k in entry["params"].values()):
            raise _fail("a specialization is not an object with a graph and its parameters")
        graph_k = _decode_graph(entry.get("graph"), constants, budget)
        if [(v.type.dtype, v.type.ndim) for v in graph_k.inputs] != [(v.type.dtype, v.type.ndim) for v in graph.inputs]:
            raise _fail("a specialization takes other inputs than the graph")
        missing = [key for key in entry["params"].values() if key not in stored]
        if missing:
            raise _fail(f"parameter {missing[0][:60]!r} is missing from params.npz")
        captured = {name: stored[key] for name, key in entry["params"].items()}
        _check_params(graph_k, captured)
        retraced.append((graph_k, captured))
    name = (document.get("name") if isinstance(document.get("name"), str) else graph.name)[:100]
    call = _decode_call(document["call"], graph, name, budget) if "call" in document else None
    traced = TracedFunction(graph, fn=None, params=params, name=name, call=call)
    for graph_k, captured in retraced:
        traced.add_specialization(graph_k, captured)
    return traced


def _check_params(graph: Graph, params: dict[str, np.ndarray]) -> None:
    for node in graph.walk():
        if node.kind == "prim::Param":
            name = node.attrs["name"]
            if name not in params:
                raise _fail(f"parameter {name!r} is missing from params.npz")
            if str(node.output.type.dtype) != str(params[name].dtype) or node.output.type.shape != params[name].shape:
                raise _fail(f"parameter {name!r} does not match its type in the graph")
