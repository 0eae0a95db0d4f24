"""The user-facing trace objects: ``trace``, ``trace_module`` and ``TracedFunction``.

A TracedFunction holds the graph as traced and compiles it per input
signature (dtype, shape, strides, device of every input) into a
:class:`Program`: the optimised, fused graph and, per backend, its executor.
"""
from __future__ import annotations

import copy
import functools
import threading
import warnings
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

import numpy as np

from . import check as checking, dask as _dask
from .errors import (DeviceMismatchError, SignatureError, TracerWarning, TracingCheckError, UnsupportedOperationError)
from .ir import SUPPORTED_DTYPES, Graph, ObjectType, TensorType
from .passes import SIMPLIFY, dce, inline_graph, freeze, run_passes, to_fixed_point
from .passes.specialize import specialize
from .arguments import Call, check_array_argument
from .tracer import freeze_hint as tracer_freeze_hint, is_array, trace_graph, unflatten_outputs

if TYPE_CHECKING:
    from .codegen import Kernel, LaunchPlan, LoweredProgram

BACKENDS = ("numpy", "emulate", "cuda")


def _example_call(fn: Any, example_inputs: Any, where: str, example_kwargs: Mapping[str, Any] | None = None) -> Call:
    """The example arguments of a trace: an array (or any single argument) or a tuple of arguments."""
    if isinstance(example_inputs, (list, dict)):
        raise SignatureError(f"{where}: expected an array or a tuple of arguments, got {type(example_inputs).__name__} "
                             f"(a single {type(example_inputs).__name__} argument is passed as a 1-tuple: (value,))")
    if example_kwargs is not None and not isinstance(example_kwargs, Mapping):
        raise SignatureError(f"{where}_kwargs: expected a dict of keyword arguments, "
                             f"got {type(example_kwargs).__name__}")
    args = example_inputs if isinstance(example_inputs, tuple) else (example_inputs,)
    # on Dask arrays, trace on one chunk (as JAX traces on abstract values): a program runs per chunk
    kwargs = dict(example_kwargs or {})
    if _dask.has_dask_arrays(args, kwargs):
        args, kwargs = _dask.map_dask_arrays((args, kwargs), _dask.first_chunk)
    return Call(fn, args, kwargs, where=where)


class Program:
    """A TracedFunction compiled for one input signature: optimised graph, kernels, executors.

    ``param(name)`` reads the arrays its graph's parameters stand for: a module's arrays as they are now,
    and the arrays its own trace captured (a trace redone at another shape captures constants of its own).
    ``lowered`` (layouts, kernels, launch plan) is made on first use: the numpy backend needs none of it.
    """

    def __init__(self, graph: Graph, input_types: list[TensorType], param_types: dict[str, TensorType],
                 param: Callable[[str], Any], output_tree: Any = 0):
        self.input_types = input_types
        self.param_types = param_types
        self.param = param
        self.output_tree = output_tree
        self.graph = graph
        self._executors: dict[str, Any] = {}
        self._lowered: LoweredProgram | None = None
        self._lock = threading.RLock()  # (an executor made under it lowers under it)

    def executor(self, backend: str) -> Any:
        with self._lock:
            if backend not in self._executors:
                from .backends import make_executor
                self._executors[backend] = make_executor(backend, self.graph, lambda: self.lowered)
            return self._executors[backend]

    @property
    def lowered(self) -> LoweredProgram:
        """The graph lowered: each fusion group's layout and kernel, and the launch plan."""
        with self._lock:
            if self._lowered is None:
                from .codegen import lower
                self._lowered = lower(self.graph)
            return self._lowered

    @property
    def kernels(self) -> list[Kernel]:
        return list(self.lowered.kernels.values())

    @property
    def plan(self) -> LaunchPlan:
        return self.lowered.plan

    def __repr__(self) -> str:
        from .display import program_signature
        return f"<Program {program_signature(self)}>"

    def _repr_html_(self) -> str:
        from .display import traced_function_html
        return traced_function_html(self)


class TracedFunction:
    """A traced function or module method; call it like the original.

    >>> import numpy as np, gputrace
    >>> f = gputrace.trace(lambda x, y: np.tanh(x * y + 1), (np.ones(3, np.float32), np.ones(3, np.float32)))
    >>> f(np.zeros(3, np.float32), np.zeros(3, np.float32))
    array([0.7615942, 0.7615942, 0.7615942], dtype=float32)
    """

    def __init__(self, graph: Graph, *, fn: Callable | None, params: Mapping[str, Any] | None = None,
                 module: Any = None, strict: bool = True, name: str | None = None, call: Call | None = None):
        self.graph = graph
        self.fn = fn
        self.call = call  # how the traced call's arguments nest; None: arrays by position (a file without it)
        self._plain = call is None or call.is_plain()
        # what calls bind to: the function, or a loaded trace's saved signature (its fn stays None: nothing to trace)
        self._binds_to = call.fn if call is not None else fn
        self.module = module
        self.strict = strict
        self.name = name or graph.name
        self._params = dict(params or {})
        self._frozen = run_passes(inline_graph(graph), [freeze]) if module is not None else graph.copy()
        self._inlined: Graph | None = None
        self._programs: dict[tuple, Program] = {}
        # (specialization, input shapes or None) -> frozen graph and captured arrays of another trace
        self._retraced: dict[tuple, tuple[Graph, dict]] = {}
        self._executors: dict[tuple, Any] = {}
        self._param_names = [n.attrs["name"] for n in self._frozen.nodes if n.kind == "prim::Param"]
        self._lock = threading.RLock()
        self.input_names = [v.name for v in graph.inputs if not isinstance(v.type, ObjectType)]
        self.input_types = [v.type for v in graph.inputs if not isinstance(v.type, ObjectType)]

    # -- views of the graph
    @property
    def inlined_graph(self) -> Graph:
        if self._inlined is None:
            self._inlined = inline_graph(self.graph)
        return self._inlined

    @property
    def frozen_graph(self) -> Graph:
        """The inlined graph with module attributes as named parameters: what gets compiled and saved."""
        return self._frozen

    @property
    def code(self) -> str:
        from .codegen.python import python_source
        return python_source(self.graph)

    def python(self) -> Callable:
        """The graph as a Python function running NumPy (built from ``.code``)."""
        from .codegen.python import python_function
        return python_function(self.graph, self.param)

    def param(self, name: str) -> Any:
        """The array a parameter of the traced graph stands for (what the first trace captured)."""
        return _read_param(self.module, self._params, name)

    @property
    def params(self) -> dict[str, Any]:
        return {name: self.param(name) for name in self._param_names}

    # -- signatures and programs
    def _check_arguments(self, arrays: Sequence[Any], call: Call | None = None) -> None:
        expected = len(self.input_types)
        if len(arrays) != expected:
            names = ", ".join(self.input_names)
            raise SignatureError(f"{self.name}() takes {expected} array argument{'s' * (expected != 1)} ({names}) "
                                 f"but {len(arrays)} were given")
        devices = set()
        for i, (x, name, t) in enumerate(zip(arrays, self.input_names, self.input_types)):
            label = call.where[i] if call is not None else f"argument '{name}' (position {i})"
            check_array_argument(x, label)
            if np.dtype(x.dtype) != t.dtype:
                raise SignatureError(f"{label}: expected dtype {t.dtype} as traced, got {np.dtype(x.dtype)}")
            if x.ndim != t.ndim:
                raise SignatureError(f"{label}: expected a {t.ndim}-d array as traced, got {x.ndim}-d "
                                     f"with shape {tuple(x.shape)}")
            if call is None or not call.converted[i]:
                devices.add(TensorType.of(x).device)
        if len(devices) > 1:
            raise DeviceMismatchError(f"{self.name}(): arrays from different devices in one call: "
                                      f"{', '.join(sorted(devices))}; move them to one device first")

    def _takes_plain(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> bool:
        """Whether the trace and this call both pass arrays by position and nothing else (the fast path)."""
        return self._plain and not kwargs and all(is_array(a) for a in args)

    def _bind(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> Call:
        """The call's arguments, checked against the trace's: their nesting, dtypes, ndims and devices."""
        if self._takes_plain(args, kwargs):
            self._check_arguments(args)  # its messages count the arrays, as the function takes arrays only
            return Call(self._binds_to, args)
        if self.call is None:  # a trace loaded from a file that saved no call takes arrays by position
            if kwargs:
                raise SignatureError(f"{self.name}() takes arrays by position only, got the keyword arguments "
                                     f"{sorted(kwargs)}")
            self._check_arguments(args)  # raises: not every argument is an array
        call = Call(self._binds_to, args, dict(kwargs))
        call.check_structure(self.call)
        if call.structure == self.call.structure:
            self._check_arguments(call.leaves, call)
        return call

    def lower(self, *args: Any, **kwargs: Any) -> Program:
        """The Program for the signature of the arguments (compiled once, then cached); on Dask arrays, the
        Dask lowering: its steps (per chunk, tree reductions, rechunks) and its lazy outputs."""
        if _dask.has_dask_arrays(args, kwargs):
            return _dask.lower_on_dask(self, args, kwargs)
        call = self._bind(args, kwargs)
        return self._program([TensorType.of(x) for x in call.leaves], call)

    def _program(self, input_types: list[TensorType], call: Call | None) -> Program:
        """The Program for inputs of ``input_types``; ``call`` (None: the traced call) has their values."""
        # a trace loaded without its Call has one specialization: arrays by position
        specialization = call.specialization if call is not None and self.call is not None \
            else self._specialization_key
        with self._lock:
            graph, captured = self._specialization(input_types, specialization, call)
            param = functools.partial(_read_param, self.module, captured)
            names = [n.attrs["name"] for n in graph.nodes if n.kind == "prim::Param"]
            param_types = {name: TensorType.of(param(name)) for name in names}
            key = (specialization, tuple(input_types), tuple(sorted(param_types.items(), key=lambda kv: kv[0])))
            program = self._programs.get(key)
            if program is None:
                program = Program(self._build_graph(graph, input_types, param_types), input_types, param_types,
                                  param, graph.meta["output_tree"])
                self._programs[key] = program
        return program

    @property
    def _specialization_key(self) -> tuple:
        return self.call.specialization if self.call is not None else ()

    def _specialization(self, input_types: list[TensorType], specialization: tuple,
                        call: Call | None) -> tuple[Graph, dict]:
        """The frozen graph for inputs of ``input_types`` and arguments that nest as ``specialization`` says
        (with its static values), and the arrays its trace captured.

        A function that reads array shapes is traced again for other shapes, and any function for other
        static arguments (once per shapes and values): its constants (``np.full(n, 1 / x.shape[0])``,
        ``np.tri(n)``) are that trace's own."""
        shapes = tuple(t.shape for t in input_types)
        if specialization == self._specialization_key and (
                not self._frozen.meta.get("reads_shape") or shapes == tuple(t.shape for t in self.input_types)):
            return self._frozen, self._params
        # a trace that read no shape serves every shape: it is kept under None
        found = self._retraced.get((specialization, shapes)) or self._retraced.get((specialization, None))
        if found is None:
            if self.fn is None and specialization != self._specialization_key:
                raise SignatureError(f"{self.name}() was loaded without its Python function, so it runs the arguments "
                                     f"it was traced with only: {call.difference(self.call)}; trace the function "
                                     f"again for these arguments")
            if self.fn is None:
                raise SignatureError(
                    f"{self.name} was traced at input shapes {[t.shape for t in self.input_types]} from a function "
                    f"that reads array shapes, so it cannot be re-specialised to {list(shapes)} without the "
                    f"Python function; trace it again")
            state = trace_graph(self.fn, call, module=self.module, strict=self.strict)
            graph = run_passes(inline_graph(state.graph), [freeze]) if self.module is not None else state.graph
            found = self._retraced[(specialization, shapes if state.reads_shape else None)] = (graph, state.params)
        return found

    def specializations(self) -> list[tuple[Graph, Callable[[str], Any]]]:
        """The traces made again for other input shapes of the traced call's arguments (a function that reads
        shapes), each with how to read its parameters: what ``save`` and pickling carry, so that a worker
        runs those shapes without the Python function."""
        with self._lock:
            return [(graph, functools.partial(_read_param, self.module, captured))
                    for (specialization, _), (graph, captured) in self._retraced.items()
                    if specialization == self._specialization_key]

    def add_specialization(self, graph: Graph, captured: Mapping[str, Any]) -> None:
        """Take a trace made for other input shapes (a loaded one): for those shapes if it read shapes, else
        for any shape."""
        shapes = tuple(v.type.shape for v in graph.inputs) if graph.meta.get("reads_shape") else None
        with self._lock:
            self._retraced[(self._specialization_key, shapes)] = (graph, dict(captured))

    def _build_graph(self, frozen: Graph, input_types, param_types) -> Graph:
        from .codegen import fuse
        from .passes.joins import place_pieces
        graph, _ = specialize(frozen.copy(), input_types, param_types)
        graph = to_fixed_point(graph, SIMPLIFY)
        # simplification may read a view from another array than before (copy(x) -> x): strides again
        graph, _ = specialize(graph, input_types, param_types)
        graph = run_passes(fuse(graph), [dce, place_pieces])  # dce: constants now inside the fusion groups
        graph.lint()
        return graph

    @property
    def kernels(self) -> list:
        """The generated kernels for the traced signature (``lower(*arrays).kernels`` for another)."""
        return self._program(self.input_types, None).kernels

    # -- running
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Run on the arrays' device: NumPy arrays on ``numpy``, CuPy arrays on ``cuda``."""
        return self._run(args, kwargs, None)

    def run(self, *args: Any, backend: str = "numpy", **kwargs: Any) -> Any:
        """Run on a chosen backend: ``numpy`` (reference), ``emulate`` (CUDA on the CPU) or ``cuda``; on Dask
        arrays, the backend each chunk runs on."""
        if backend not in BACKENDS:
            raise ValueError(f"run(backend=...): expected one of {', '.join(BACKENDS)}, got {backend!r}")
        return self._run(args, kwargs, backend)

    def _run(self, args: Sequence[Any], kwargs: Mapping[str, Any], backend: str | None) -> Any:
        # A signature seen before (same array types, dtypes, shapes, strides, static values and parameter
        # layouts) goes straight to its executor: the checks and the compilation happened on its first call.
        plain = self._takes_plain(args, kwargs)
        if not plain and _dask.has_dask_arrays(args, kwargs):
            return _dask.run_on_dask(self, args, kwargs, backend)
        call = None if plain else self._bind(args, kwargs)
        arrays = args if call is None else call.leaves
        key = (backend, _layouts(arrays), call.specialization if call is not None else (),
               _layouts([self.param(name) for name in self._param_names]) if self._param_names else ())
        found = self._executors.get(key)
        if found is None:
            call = call or self._bind(args, kwargs)
            program = self._program([TensorType.of(x) for x in call.leaves], call)
            if backend is None:
                devices = [TensorType.of(x).device for x, converted in zip(call.leaves, call.converted)
                           if not converted]
                backend = "numpy" if (devices[0] if devices else "cpu") == "cpu" else "cuda"
            found = program.executor(backend), program
            if None not in key[1:]:
                self._executors[key] = found
        executor, program = found
        outputs = executor.run(arrays, program.param)
        updated = program.graph.meta.get("updated_inputs")
        if updated:  # inputs the function updates in place: their new values are the last outputs
            for i, new in zip(updated, outputs[-len(updated):]):
                arrays[i][...] = new
        return unflatten_outputs(program.output_tree, outputs)

    def check(self, *args: Any, backends: Sequence[str] = ("numpy", "emulate"), tolerance: float = 1e-5):
        return check_trace(self, args, backends=backends, tolerance=tolerance)

    def __reduce__(self) -> tuple:
        """Pickles as :func:`gputrace.save` writes it (graph and parameters); compiled kernels are rebuilt, or read
        from the kernel cache, where it is unpickled."""
        from .serialize import dumps, loads
        return loads, (dumps(self),)

    # -- printing
    def __repr__(self) -> str:
        if self.module is not None:
            return repr(self.module)
        from .display import traced_function_signature
        return f"<TracedFunction {traced_function_signature(self)}>"

    def __str__(self) -> str:
        return self.__repr__()

    def _repr_html_(self) -> str:
        from .display import traced_function_html
        return traced_function_html(self)


def _read_param(module: Any, captured: Mapping[str, Any], name: str) -> Any:
    """A graph parameter's array: one the trace captured, else the module's array of that name (read now)."""
    if module is not None and name not in captured:
        return module.get_array(name)
    return captured[name]


def _layouts(arrays: Sequence[Any]) -> tuple | None:
    """What a compiled Program depends on, per array (type, device, dtype, shape, strides); None for non-arrays."""
    try:
        return tuple([(type(x), -1 if isinstance(x, np.ndarray) else x.data.device_id, x.dtype, x.shape, x.strides)
                      for x in arrays])
    except AttributeError:
        return None


# ----------------------------------------------------------------------------- tracing entry points


def trace(fn_or_module: Any, example_inputs: Any, *, example_kwarg_inputs: Mapping[str, Any] | None = None,
          check_trace: bool = True, check_inputs: Sequence[Any] | None = None, check_tolerance: float = 1e-5,
          strict: bool = True) -> TracedFunction:
    """Trace a function (or a module's ``forward``) on example arguments, like ``torch.jit.trace``.

    ``example_inputs`` is an array or a tuple of arguments; an argument may nest arrays in dicts, lists and
    tuples (``params["blocks"][3]["w"]``); a Python float is a traced 0-d input that stays weakly typed;
    ints, bools, strings and other hashable values are static: another value traces again.

    >>> import numpy as np, gputrace
    >>> traced = gputrace.trace(lambda x: np.exp(-x) * 2, np.ones((2, 3), np.float32))
    >>> print(traced.graph)  # doctest: +ELLIPSIS
    graph(%x : Float32(2, 3, strides=[3, 1], device=cpu)):
    ...
    """
    from .nn import Module
    if isinstance(fn_or_module, Module):
        return trace_module(fn_or_module, {"forward": example_inputs}, check_trace=check_trace,
                            check_inputs=[{"forward": c} for c in check_inputs] if check_inputs else None,
                            check_tolerance=check_tolerance, strict=strict,
                            example_kwarg_inputs={"forward": example_kwarg_inputs} if example_kwarg_inputs else None)
    if not callable(fn_or_module):
        raise TypeError(f"trace(fn_or_module): expected a function or a gputrace.nn.Module, "
                        f"got {type(fn_or_module).__name__}")
    call = _example_call(fn_or_module, example_inputs, "example_inputs", example_kwarg_inputs)
    try:
        state = trace_graph(fn_or_module, call, strict=strict)
    except (ValueError, IndexError) as error:
        _dask.note_traced_on_first_chunks(error, example_inputs)
        raise
    traced = TracedFunction(state.graph, fn=fn_or_module, params=state.params, strict=strict, call=call)
    if check_trace:
        checks = [call] if check_inputs is None else \
            [_example_call(fn_or_module, c, f"check_inputs[{i}]") for i, c in enumerate(check_inputs)]
        _check_against_retrace(traced, checks, check_tolerance, state)
    return traced


def trace_module(module: Any, inputs: Mapping[str, Any], *, check_trace: bool = True,
                 check_inputs: Sequence[Mapping[str, Any]] | None = None, check_tolerance: float = 1e-5,
                 strict: bool = True, example_kwarg_inputs: Mapping[str, Mapping[str, Any]] | None = None,
                 ) -> "TracedModule":
    """Trace methods of a ``gputrace.nn.Module``: ``trace_module(m, {"forward": (x, h)})``."""
    from .nn import Module
    if not isinstance(module, Module):
        raise TypeError(f"trace_module(module): expected a gputrace.nn.Module, got {type(module).__name__}")
    if not isinstance(inputs, Mapping) or not inputs:
        raise TypeError(f"trace_module(inputs): expected a dict of method name to example inputs, "
                        f"got {type(inputs).__name__}")
    methods = {}
    for method, example in inputs.items():
        if not callable(getattr(module, method, None)):
            raise AttributeError(f"trace_module(inputs): {type(module).__name__} has no method {method!r}")
        fn = getattr(module, method)
        call = _example_call(fn, example, f"inputs[{method!r}]", (example_kwarg_inputs or {}).get(method))
        state = trace_graph(fn, call, module=module, method=method, strict=strict)
        traced = TracedFunction(state.graph, fn=fn, params=state.params, module=module, strict=strict, name=method,
                                call=call)
        if check_trace:
            checks = [call] if check_inputs is None else [_example_call(fn, c[method], f"check_inputs[{i}][{method!r}]")
                                                          for i, c in enumerate(check_inputs)]
            _check_against_retrace(traced, checks, check_tolerance, state)
        methods[method] = traced
    return TracedModule(module, methods)


class TracedModule:
    """A traced module: calling it runs the traced ``forward``; other traced methods are attributes."""

    def __init__(self, module: Any, methods: dict[str, TracedFunction]):
        self.original_module = module
        self.methods = methods

    def __getattr__(self, name: str) -> Any:
        methods = self.__dict__.get("methods", {})
        if name in methods:
            return methods[name]
        forward = methods.get("forward")
        if forward is not None and not name.startswith("_"):
            return getattr(forward, name)
        raise AttributeError(f"TracedModule has no attribute {name!r}")

    def __call__(self, *arrays: Any) -> Any:
        return self.methods["forward"](*arrays)

    def __repr__(self) -> str:
        return _module_repr(self.original_module)

    def _repr_html_(self) -> str:
        from .display import traced_function_html
        return traced_function_html(self.methods["forward"])


def _module_repr(module: Any) -> str:
    lines = [f"({name}): " + _module_repr(child).replace("\n", "\n  ") for name, child in module._modules.items()]
    head = f"{type(module).__name__}(\n  original_name={type(module).__name__}"
    if not lines:
        return f"{type(module).__name__}(original_name={type(module).__name__})"
    return head + "\n  " + "\n  ".join(lines) + "\n)"


# ----------------------------------------------------------------------------- checks


def _check_against_retrace(traced: TracedFunction, check_inputs: list[Call], tolerance: float, first_state) -> None:
    from .backends.reference import Interpreter
    for i, inputs in enumerate(check_inputs):
        which = f"check input {i}" if len(check_inputs) > 1 else "the check inputs"
        with warnings.catch_warnings():  # the first trace gave the user its warnings; the check repeats none
            warnings.simplefilter("ignore", TracerWarning)
            retraced = trace_graph(traced.fn, inputs, module=traced.module, method=traced.name, strict=traced.strict)
        checking.check_graphs_agree(traced.graph, traced._params, retraced.graph, retraced.params, which)
        computed: dict = {}
        args = ([traced.module] if traced.module is not None else []) + list(inputs.leaves)
        outputs = Interpreter(traced.graph, traced._params, record=computed).run(*args)
        eager = [retraced.values[v] for v in retraced.graph.outputs]
        for k, (want, got) in enumerate(zip(eager, outputs)):
            difference = checking.compare_arrays(want, got, tolerance)
            if difference.ok:
                continue
            culprit = checking.first_differing_node(traced.graph, computed, retraced.graph, retraced.values, tolerance)
            node_text = (f"\n  First differing node: {checking.describe(culprit[0])} ({culprit[1]})"
                         if culprit else "")
            raise TracingCheckError(
                f"Tracing check failed on {which}: output {k} of the traced graph differs from the Python "
                f"function: {difference} (tolerance {tolerance:g}).{node_text}")
        # the values recorded while tracing are those of the proxies: compare with NumPy run eagerly, too
        # (aliasing through in-place operators and views, which tracing can miss, shows up only there)
        expected = _eager_outputs(traced, inputs)
        if len(expected) != len(outputs):
            raise TracingCheckError(f"Tracing check failed on {which}: the Python function, run eagerly, returns "
                                    f"{len(expected)} arrays but the traced graph {len(outputs)}")
        for k, (want, got) in enumerate(zip(expected, outputs)):
            difference = checking.compare_arrays(want, got, tolerance)
            if not difference.ok:
                raise TracingCheckError(
                    f"Tracing check failed on {which}: output {k} of the traced graph disagrees with eager "
                    f"execution of the Python function: {difference} (tolerance {tolerance:g})")
    if first_state.frozen:
        _check_other_values(traced, check_inputs[0], tolerance, first_state.frozen)


def _check_other_values(traced: TracedFunction, inputs: Call, tolerance: float, frozen: list) -> None:
    """Run the traced graph and the Python function on other values, the inputs' elements permuted (every
    value's range and sign kept): a value the trace froze into a constant (``float(x[0])``,
    ``np.array([a, b])``, a captured array indexed by a traced index) shows up as a difference, which
    names the lines where values were frozen."""
    from .backends.reference import Interpreter
    module = [traced.module] if traced.module is not None else []
    # the function may write into arrays the trace captured (a cache): they are put back after each run
    captured = {name: array.copy() for name, array in traced._params.items()
                if isinstance(array, np.ndarray) and array.flags.writeable}
    try:
        for attempt in range(3):  # the function may refuse some orders (an index out of range, say): try others
            others = [_permuted(x, (attempt, k)) for k, x in enumerate(inputs.leaves)]
            outputs = Interpreter(traced.graph, traced._params).run(*module, *others)
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    expected = _eager_outputs(traced, inputs, others)
                break
            except Exception:
                continue
        else:
            return  # no order the function accepts: nothing to compare
    finally:
        for name, saved in captured.items():
            traced._params[name][...] = saved
    for k, (want, got) in enumerate(zip(expected, outputs)):
        difference = checking.compare_arrays(want, got, tolerance)
        if difference.ok:
            continue
        sites: dict = {}  # line -> its conversions, each once, in trace order
        for where, what in frozen:
            sites.setdefault(where, {})[what] = None
        lines = "".join(f"\n  {where or 'an unknown line'}: converted to {' and '.join(whats)}; "
                        f"{tracer_freeze_hint(list(whats))}" for where, whats in sites.items())
        raise TracingCheckError(
            f"Tracing check failed on other input values (the example inputs' elements permuted): output {k} of "
            f"the traced graph disagrees with the Python function: {difference} (tolerance {tolerance:g}). "
            f"The trace froze values computed from the inputs into constants:{lines}")


def _permuted(x: Any, seed: tuple) -> Any:
    """``x`` with its elements in another order (the same order for every call), on the host."""
    x = checking.to_numpy(x)
    if x.size < 2:
        return x.copy()
    flat = x.ravel()
    order = np.random.default_rng(seed).permutation(flat.size)
    if (flat[order] == flat).all():  # a permutation that changed nothing: turn it by one
        order = np.roll(np.arange(flat.size), 1)
    return flat[order].reshape(x.shape)


def _eager_outputs(traced: TracedFunction, call: Call, leaves: Sequence[Any] | None = None) -> list:
    """The leaves of what ``traced.fn`` returns when run eagerly on copies of ``call``'s arguments (with
    ``leaves`` at its traced leaves, if given).

    Neither the inputs nor a module's parameters and buffers are modified: the run gets copies of them all.
    """
    fn = traced.fn if traced.module is None else getattr(_module_with_copied_arrays(traced.module, {}), traced.name)
    copies = [_copy_keeping_layout(x) for x in (call.leaves if leaves is None else leaves)]
    args, kwargs = call.rebuild(copies, python_floats=True)
    with np.errstate(all="ignore"):  # as while tracing: ops run without floating-point warnings
        out = fn(*args, **kwargs)
    leaves: list = []

    def visit(x: Any) -> None:
        if isinstance(x, (tuple, list)):
            for v in x:
                visit(v)
        elif isinstance(x, dict):
            for v in x.values():
                visit(v)
        else:
            leaves.append(checking.to_numpy(x))

    visit(out)
    return leaves + [copies[i] for i in traced.graph.meta.get("updated_inputs", ())]  # as the graph's last outputs


def _copy_keeping_layout(x: Any) -> Any:
    """A copy of ``x`` with its very strides, negative ones too: NumPy then runs the same loops on it as on ``x``
    (reductions add in the same order; a float cast to an integer it cannot hold, which NumPy leaves undefined,
    gives what it gives on ``x``: a reversed view and its contiguous copy cast -3e38 to uint32 differently)."""
    if not isinstance(x, np.ndarray) or x.size == 0 or any(s == 0 and n > 1 for n, s in zip(x.shape, x.strides)):
        return x.copy(order="K")  # a broadcast view's copy has elements of its own
    low = sum(min(0, (n - 1) * s) for n, s in zip(x.shape, x.strides))
    high = sum(max(0, (n - 1) * s) for n, s in zip(x.shape, x.strides)) + x.itemsize
    copy = np.ndarray(x.shape, x.dtype, buffer=np.empty(high - low, np.uint8), offset=-low, strides=x.strides)
    copy[...] = x
    return copy


def _module_with_copied_arrays(module: Any, done: dict) -> Any:
    """A shallow copy of ``module`` and its submodules with copies of their arrays (other attributes shared)."""
    if id(module) not in done:
        clone = done[id(module)] = copy.copy(module)
        for store in ("_parameters", "_buffers"):
            object.__setattr__(clone, store, {name: a.copy() for name, a in getattr(module, store).items()})
        object.__setattr__(clone, "_modules", {name: _module_with_copied_arrays(child, done)
                                               for name, child in module._modules.items()})
    return done[id(module)]


def _float64_outputs(program: Program, inputs: Sequence[Any], param: Callable[[str], Any]) -> list | None:
    """The program's outputs computed by NumPy with float16/float32 inputs and parameters widened to
    float64: close to the exact values, to judge which of two float32 results is the more accurate.
    None where the program does not run on widened arrays (a float32 bit view, say)."""
    from .backends.reference import host_arrays

    def widened(array: Any) -> Any:
        array = host_arrays([array])[0]
        return array.astype(np.float64) if getattr(array, "dtype", None) in (np.float16, np.float32) else array
    try:
        return program.executor("numpy").run([widened(x) for x in inputs], lambda name: widened(param(name)))
    except Exception:  # an estimate only: without it, the plain comparison stands
        return None


def check_trace(traced: Any, inputs: Sequence[Any], *, backends: Sequence[str] = ("numpy", "emulate"),
                tolerance: float = 1e-5, raise_on_mismatch: bool = True) -> checking.CheckReport:
    """Run ``traced`` on ``inputs`` with each backend and compare every output with the first backend's.

    Raises TracingCheckError naming the output, the error and the first differing kernel or node.
    """
    if isinstance(traced, TracedModule):
        traced = traced.methods["forward"]
    if not backends:
        raise ValueError("check_trace(backends=...): expected at least one backend")
    call = traced._bind((inputs,) if is_array(inputs) or not isinstance(inputs, (tuple, list)) else tuple(inputs), {})
    program = traced._program([TensorType.of(x) for x in call.leaves], call)
    inputs = call.leaves
    reference, *others = backends
    records: dict[str, dict] = {}
    results: dict[str, list] = {}
    for backend in backends:
        records[backend] = {}
        results[backend] = program.executor(backend).run(list(inputs), program.param, record=records[backend])
    report = checking.CheckReport(reference, tolerance=tolerance)
    exact = functools.cache(lambda: _float64_outputs(program, inputs, program.param))
    for backend in others:
        for k, (want, got) in enumerate(zip(results[reference], results[backend])):
            difference = checking.compare_arrays(want, got, tolerance)
            if not difference.ok and not difference.reason and exact() is not None:
                difference = checking.judge_by_exact_values(want, got, exact()[k], tolerance, difference, reference)
            report.rows.append(checking.OutputCheck(k, backend, difference))
    if raise_on_mismatch and not report.ok:
        bad = next(r for r in report.rows if not r.difference.ok)
        culprit = checking.first_differing_node(program.graph, records[bad.backend], program.graph,
                                                records[reference], tolerance)
        where = ""
        if culprit is not None:
            node, difference = culprit
            label = node.attrs.get("kernel", node.kind) if node.kind == "gt::FusionGroup" else node.kind
            where = f"\n  First differing node ({label}): {checking.describe(node)} ({difference})"
        raise TracingCheckError(f"backend {bad.backend} differs from {reference} on output {bad.output}: "
                                f"{bad.difference} (tolerance {tolerance:g}).{where}\n{report}")
    return report
