"""Modules with parameters, traced like ``torch.jit.trace_module``.

Parameters, buffers and submodules are registered by attribute assignment.
Outside a trace, reading ``self.weight`` gives the array itself; while the
module is traced, the read is recorded as ``prim::GetAttr`` and calling a
submodule as ``prim::CallMethod``, as in TorchScript.

>>> import numpy as np, gputrace
>>> layer = gputrace.nn.Linear(4, 3)
>>> layer(np.ones((2, 4), np.float32)).shape
(2, 3)
"""
from __future__ import annotations

from typing import Any, Iterator

import numpy as np

from .errors import TracingError
from .tracer import TracedArray, call_module, is_array, traced_attribute, user_location


class Parameter:
    """Marks an array as a module parameter: ``self.weight = Parameter(np.zeros((4, 4)))``."""

    def __init__(self, data: Any):
        if not is_array(data):
            raise TypeError(f"Parameter(data): expected a numpy.ndarray or cupy.ndarray, got {type(data).__name__}")
        self.data = data


class Module:
    """Base class of traceable modules; subclasses define ``forward``."""

    def __init__(self):
        object.__setattr__(self, "_parameters", {})
        object.__setattr__(self, "_buffers", {})
        object.__setattr__(self, "_modules", {})

    def forward(self, *args: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} has no forward method")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return call_module(self, "forward", args, kwargs)

    # -- registration by assignment
    def __setattr__(self, name: str, value: Any) -> None:
        if "_parameters" not in self.__dict__:
            raise AttributeError(f"{type(self).__name__}.__init__ must call super().__init__() before "
                                 f"assigning {name!r}")
        if isinstance(value, TracedArray):
            where = user_location()
            raise TracingError(
                f"{type(self).__name__}.{name} = <traced array>{f' at {where}' if where else ''}: a traced "
                f"function cannot change module state (the traced graph would not repeat the assignment); keep "
                f"the value in a local variable, or update {name!r} outside the traced call")
        was_parameter = name in self._parameters
        for store in (self._parameters, self._buffers, self._modules):
            store.pop(name, None)
        if isinstance(value, Parameter):
            self._parameters[name] = value.data
        elif isinstance(value, Module):
            self._modules[name] = value
        elif is_array(value):  # `self.bias *= 2` assigns the array back: it stays a parameter
            (self._parameters if was_parameter else self._buffers)[name] = value
        else:
            object.__setattr__(self, name, value)

    def __getattr__(self, name: str) -> Any:
        state = self.__dict__
        for store_name in ("_parameters", "_buffers"):
            store = state.get(store_name, {})
            if name in store:
                return traced_attribute(self, name, store[name])
        if name in state.get("_modules", {}):
            return state["_modules"][name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def register_buffer(self, name: str, array: Any) -> None:
        setattr(self, name, array)

    # -- walking
    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, "Module"]]:
        yield prefix, self
        for name, child in self._modules.items():
            yield from child.named_modules(f"{prefix}.{name}" if prefix else name)

    def children(self) -> Iterator["Module"]:
        return iter(self._modules.values())

    def named_parameters(self) -> Iterator[tuple[str, Any]]:
        for prefix, module in self.named_modules():
            for name, array in module._parameters.items():
                yield (f"{prefix}.{name}" if prefix else name), array

    def parameters(self) -> Iterator[Any]:
        return (array for _, array in self.named_parameters())

    def named_arrays(self) -> Iterator[tuple[str, Any]]:
        """Parameters and buffers, by dotted path."""
        for prefix, module in self.named_modules():
            for store in (module._parameters, module._buffers):
                for name, array in store.items():
                    yield (f"{prefix}.{name}" if prefix else name), array

    def get_array(self, path: str) -> Any:
        """The parameter or buffer at a dotted path like ``linear.weight``."""
        *modules, name = path.split(".")
        owner = self
        for m in modules:
            owner = owner._modules[m]
        if name in owner._parameters:
            return owner._parameters[name]
        return owner._buffers[name]

    def to(self, device: str) -> "Module":
        """Move every parameter and buffer to ``"cpu"`` (NumPy) or ``"cuda"`` (CuPy), in place."""
        if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
            raise ValueError(f"Module.to(device): expected 'cpu' or 'cuda', got {device!r}")
        for _, module in self.named_modules():
            for store in (module._parameters, module._buffers):
                for name, array in store.items():
                    if device == "cpu":
                        store[name] = array.get() if not isinstance(array, np.ndarray) else array
                    else:
                        import cupy
                        store[name] = cupy.asarray(array)
        return self

    # -- printing, like torch
    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        lines = [f"({name}): " + repr(child).replace("\n", "\n  ") for name, child in self._modules.items()]
        extra = self.extra_repr()
        if not lines:
            return f"{type(self).__name__}({extra})"
        body = "\n  ".join(([extra] if extra else []) + lines)
        return f"{type(self).__name__}(\n  {body}\n)"


class Linear(Module):
    """``y = x @ weight.T + bias`` with weight ``(out_features, in_features)``, like ``torch.nn.Linear``."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, *, dtype: Any = np.float32,
                 seed: int | None = None):
        super().__init__()
        for arg, value in (("in_features", in_features), ("out_features", out_features)):
            if not isinstance(value, (int, np.integer)) or value <= 0:
                raise ValueError(f"Linear({arg}): expected a positive int, got {value!r}")
        self.in_features, self.out_features = int(in_features), int(out_features)
        rng = np.random.default_rng(seed)
        bound = 1.0 / np.sqrt(in_features)
        self.weight = Parameter(rng.uniform(-bound, bound, (out_features, in_features)).astype(dtype))
        self.bias = Parameter(rng.uniform(-bound, bound, (out_features,)).astype(dtype)) if bias else None

    def forward(self, x: Any) -> Any:
        y = x @ self.weight.T
        bias = self.bias
        return y if bias is None else y + bias

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class Sequential(Module):
    """Modules applied in order: ``Sequential(Linear(4, 8), ReLU(), Linear(8, 2))``."""

    def __init__(self, *modules: Module):
        super().__init__()
        for i, module in enumerate(modules):
            if not isinstance(module, Module):
                raise TypeError(f"Sequential(modules[{i}]): expected a gputrace.nn.Module, got "
                                f"{type(module).__name__}")
            setattr(self, str(i), module)

    def forward(self, x: Any) -> Any:
        for module in self._modules.values():
            x = module(x)
        return x

    def __len__(self) -> int:
        return len(self._modules)

    def __getitem__(self, index: int) -> Module:
        return list(self._modules.values())[index]


class ReLU(Module):
    def forward(self, x):
        return np.maximum(x, 0)


class Tanh(Module):
    def forward(self, x):
        return np.tanh(x)


class Sigmoid(Module):
    def forward(self, x):
        return 1 / (1 + np.exp(-x))


class GELU(Module):
    """The tanh approximation of GELU, as ``torch.nn.GELU(approximate="tanh")``."""

    def forward(self, x):
        return 0.5 * x * (1 + np.tanh(0.7978845608028654 * (x + 0.044715 * x ** 3)))


class SiLU(Module):
    def forward(self, x):
        return x / (1 + np.exp(-x))


class Softmax(Module):
    def __init__(self, axis: int = -1):
        super().__init__()
        self.axis = axis

    def forward(self, x):
        shifted = x - np.max(x, axis=self.axis, keepdims=True)
        e = np.exp(shifted)
        return e / np.sum(e, axis=self.axis, keepdims=True)

    def extra_repr(self) -> str:
        return f"axis={self.axis}"
