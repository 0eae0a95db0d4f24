"""Bad input gets an error that names the argument or op, what was expected and what came."""
import numpy as np
import pytest

import gputrace


@pytest.fixture
def traced():
    return gputrace.trace(lambda x, y: x * y, (np.ones((2, 3), np.float32), np.ones((2, 3), np.float32)))


def test_wrong_arity(traced):
    with pytest.raises(TypeError, match=r"takes 2 array arguments \(x, y\) but 1 were given"):
        traced(np.ones((2, 3), np.float32))


def test_wrong_dtype_names_argument(traced):
    with pytest.raises(gputrace.SignatureError, match=r"argument 'y' \(position 1\): expected dtype float32 as traced, got float64"):
        traced(np.ones((2, 3), np.float32), np.ones((2, 3)))


def test_wrong_ndim(traced):
    with pytest.raises(gputrace.SignatureError, match="expected a 2-d array as traced, got 1-d"):
        traced(np.ones(3, np.float32), np.ones((2, 3), np.float32))


@pytest.mark.parametrize("bad, what", [([1, 2], "list"), (3.0, "float"), (None, "NoneType")])
def test_non_array_arguments(traced, bad, what):
    with pytest.raises(TypeError, match=f"argument 'x' \\(position 0\\): expected a numpy.ndarray or cupy.ndarray, got {what}"):
        traced(bad, np.ones((2, 3), np.float32))


@pytest.mark.parametrize("array, what", [(np.ones(2, np.complex64), "complex64"), (np.array(["a"]), "<U1"),
                                         (np.ones(2, ">f4"), "big-endian"), (np.array([object()]), "object")])
def test_unsupported_dtypes(array, what):
    with pytest.raises(TypeError, match=f"example_inputs\\[0\\].*{what}"):
        gputrace.trace(lambda x: x, (array,))


def test_unknown_numpy_function_names_function_and_line():
    with pytest.raises(gputrace.UnsupportedOperationError, match=r"np\.sort is not supported by gputrace at .*test_errors.py:\d+"):
        gputrace.trace(lambda x: np.sort(x), np.ones(3))


@pytest.mark.parametrize("fn, what", [
    (lambda x: np.add(x, 1, out=x), "out="),
    (lambda x: np.exp(x, where=x > 0), "where="),
    (lambda x: x.reshape(3, order="F"), "order='F'"),
    (lambda x: x[np.array([0, 1])], "advanced indexing"),
])
def test_unsupported_keywords_and_indexing(fn, what):
    with pytest.raises(gputrace.UnsupportedOperationError, match=what.replace("(", r"\(")):
        gputrace.trace(fn, np.ones(3))


def test_hierarchy():
    for cls in (gputrace.UnsupportedOperationError, gputrace.SignatureError):
        assert issubclass(cls, gputrace.GputraceError) and issubclass(cls, TypeError)
    assert issubclass(gputrace.GraphFormatError, ValueError)
    assert issubclass(gputrace.TracingCheckError, gputrace.GputraceError)
