"""What the tracer cannot record is an error naming the NumPy function or keyword and the user's line.

(Signature errors on calls are in test_api.py, every bad input of issue 5 in test_bad_inputs.py, hostile files
in test_serialize.py.)
"""
import inspect

import numpy as np
import pytest

import gputrace
from gputrace import errors

HERE = __file__


def unsupported(fn, what, array=None):
    """Tracing ``fn`` raises UnsupportedOperationError naming ``what`` (a regex) and the line of ``fn``."""
    lines, start = inspect.getsourcelines(fn)
    with pytest.raises(gputrace.UnsupportedOperationError, match=what) as info:
        gputrace.trace(fn, np.ones((3, 3), np.float32) if array is None else array)
    assert f" is not supported by gputrace at {HERE}:{start}" in str(info.value)
    return str(info.value)


@pytest.mark.parametrize("fn, name", [
    (lambda x: np.kron(x, x), "np.kron"),
    (lambda x: np.interp(x, x[0], x[1]), "np.interp"),
    (lambda x: np.fft.fft(x), "np.fft.fft"),
    (lambda x: np.linalg.svd(x), "np.linalg.svd"),
    (lambda x: np.cross(x, x), "np.cross"),
    (lambda x: np.nonzero(x), "np.nonzero"),
], ids=["kron", "interp", "fft", "svd", "cross", "nonzero"])
def test_unknown_numpy_functions_name_the_function_and_the_line(fn, name):
    message = unsupported(fn, f"the NumPy function {name} is not supported by gputrace")
    assert message.startswith(f"the NumPy function {name} is not supported")


@pytest.mark.parametrize("fn, what", [
    (lambda x: np.maximum.accumulate(x), r"np.maximum.accumulate"),
    (lambda x: np.multiply.outer(x, x), r"np.multiply.outer"),
    (lambda x: np.divmod(x, 2), r"the NumPy function np.divmod"),  # two outputs
    (lambda x: np.where(x), r"np.where with one argument \(its output shape depends on the data\)"),
], ids=["maximum-accumulate", "outer", "two-outputs", "where-one-argument"])
def test_unsupported_ufunc_methods_and_forms(fn, what):
    unsupported(fn, what)


@pytest.mark.parametrize("fn, what", [
    (lambda x: np.add(x, 1, out=x), r"np.add\(..., out=...\).*compute a new array instead"),
    (lambda x: np.exp(x, where=x > 0), r"np.exp\(..., where=...\)"),
    (lambda x: np.log(x, order="F"), r"np.log\(..., order=...\)"),
    (lambda x: np.exp(x, dtype=np.float64), r"np.exp\(..., dtype=...\)"),
    (lambda x: x.sum(out=x[0]), r"the keyword out= of np.sum"),
    (lambda x: np.sum(x, where=x > 0), r"the keyword where= of np.sum"),
    (lambda x: np.mean(x, where=x > 0), r"the keyword where= of np.mean"),
    (lambda x: np.matmul(x, x, out=x), r"the keyword out= of np.matmul"),
    (lambda x: np.concatenate([x, x], out=np.empty((6, 3), np.float32)), r"the keyword out= of np.concatenate"),
    (lambda x: x.reshape(9, order="F"), r"reshape\(order='F'\).*only order='C' is traced"),
    (lambda x: np.ravel(x, order="F"), r"ravel\(order='F'\)"),
    (lambda x: np.round(x, 2), r"np.round\(..., decimals=2\)"),
    (lambda x: np.zeros_like(x, shape=(2,)), r"np.zeros_like\(..., shape=...\)"),
    (lambda x: np.full_like(x, x[0, 0]), r"np.full_like with an array fill_value.*np.broadcast_to"),
], ids=["ufunc-out", "ufunc-where", "ufunc-order", "ufunc-dtype", "sum-out", "sum-where", "mean-where",
        "matmul-out", "concatenate-out", "reshape-order", "ravel-order", "round-decimals", "zeros_like-shape",
        "full_like-array"])
def test_unsupported_keywords(fn, what):
    unsupported(fn, what)


@pytest.mark.parametrize("fn, what", [
    (lambda x: x[x > 0], r"x\[mask\] with a traced boolean mask \(taken at test_errors.py:\d+:\d+; its size depends on the data\) "
                             r"used as the function's output.*np.where"),
    (lambda x: x[True], r"indexing with the boolean scalar True"),
], ids=["mask", "bool"])
def test_indexing_with_a_size_that_depends_on_the_data_is_unsupported(fn, what):
    unsupported(fn, what)


@pytest.mark.parametrize("fn, what", [
    (lambda x: x.astype(np.complex64), "the result of np.astype of dtype complex64"),
    (lambda x: x + np.ones(3, np.complex128), "a captured array of dtype complex128"),
    (lambda x: x * np.complex64(1j), r"the NumPy scalar np.complex64\(1j\) of dtype complex64"),
    (lambda x: x + 1j, r"a constant of type complex \(1j\)"),
    (lambda x: x + object(), "a constant of type object"),
    (lambda x: x.astype(object), "the result of np.astype of dtype object"),
], ids=["astype", "captured", "numpy-scalar", "python-complex", "function", "object"])
def test_unsupported_dtypes_and_constants_inside_the_trace(fn, what):
    message = unsupported(fn, what)
    assert "; gputrace supports bool, int8" in message or "constant" in message


def test_an_array_attribute_of_an_unsupported_dtype_in_a_module():
    class Complex(gputrace.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = np.ones(3, np.complex64)

        def forward(self, x):
            return x * self.w

    with pytest.raises(gputrace.UnsupportedOperationError, match="the module attribute 'w' of dtype complex64"):
        gputrace.trace(Complex(), np.ones(3, np.float32))


def test_indexing_errors_are_numpys():
    with pytest.raises(IndexError, match="too many indices for array: array is 1-dimensional, but 2 were indexed"):
        gputrace.trace(lambda x: x[0, 0], np.ones(3))
    with pytest.raises(IndexError, match="an index can only have a single ellipsis"):
        gputrace.trace(lambda x: x[..., ...], np.ones(3))
    with pytest.raises(IndexError, match="index 5 is out of bounds for axis 0 with size 3"):
        gputrace.trace(lambda x: x[5], np.ones(3))


# ----------------------------------------------------------------------------- the hierarchy

BUILTIN_OF = {
    gputrace.UnsupportedOperationError: TypeError,
    gputrace.SignatureError: TypeError,
    gputrace.TracingError: RuntimeError,
    gputrace.TracingCheckError: AssertionError,
    gputrace.GraphFormatError: ValueError,
    gputrace.KernelCompileError: RuntimeError,
    gputrace.BackendUnavailableError: RuntimeError,
    gputrace.DeviceMismatchError: ValueError,
}


def test_every_error_class_is_listed_and_exported():
    defined = {cls for cls in vars(errors).values()
               if isinstance(cls, type) and issubclass(cls, errors.GputraceError) and cls is not errors.GputraceError}
    assert defined == set(BUILTIN_OF)
    assert all(getattr(gputrace, cls.__name__) is cls for cls in defined)


@pytest.mark.parametrize("cls", BUILTIN_OF, ids=lambda cls: cls.__name__)
def test_every_error_derives_from_gputrace_error_and_the_matching_builtin(cls):
    assert issubclass(cls, gputrace.GputraceError) and issubclass(cls, BUILTIN_OF[cls])


def test_tracer_warning_is_a_user_warning():
    assert issubclass(gputrace.TracerWarning, UserWarning)
    assert not issubclass(gputrace.TracerWarning, gputrace.GputraceError)
