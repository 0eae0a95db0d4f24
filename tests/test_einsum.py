"""np.einsum on random subscripts: repeated labels, '...', implicit outputs, size-1 broadcasting, one to three
operands, float and integer dtypes; the traced function against NumPy (numpy backend), NumPy's rejections alike."""
import random
import warnings

import numpy as np
import pytest

import gputrace


def random_einsum(rnd: random.Random, rng: np.random.Generator):
    """Subscripts and operands, NumPy-valid or not (NumPy decides)."""
    sizes = {c: rnd.choice([1, 2, 3, 4]) for c in "abcde"}
    ellipsis = [rnd.choice([1, 2, 3]) for _ in range(rnd.choice([1, 2]))] if rnd.random() < 0.3 else None
    dtype = rnd.choice([np.float32, np.float64, np.int32, np.float16])
    terms, operands = [], []
    for _ in range(rnd.choice([1, 2, 2, 3])):
        labels = rnd.choices("abcde"[:rnd.choice([3, 5])], k=rnd.randint(0, 3))
        shape = [sizes[c] if rnd.random() < 0.9 else 1 for c in labels]
        term = "".join(labels)
        if ellipsis and rnd.random() < 0.7:
            cut, dims = rnd.randint(0, len(term)), ellipsis[rnd.randint(0, len(ellipsis) - 1):]
            term, shape = term[:cut] + "..." + term[cut:], shape[:cut] + dims + shape[cut:]
        terms.append(term)
        operands.append(np.asarray(rng.standard_normal(shape) * 2).astype(dtype))
    subscripts = ",".join(terms)
    if rnd.random() < 0.7:
        used = sorted(set(subscripts.replace(".", "")))
        output = "".join(rnd.sample(used, rnd.randint(0, len(used))))
        if ellipsis and rnd.random() < 0.8:
            cut = rnd.randint(0, len(output))
            output = output[:cut] + "..." + output[cut:]
        subscripts += "->" + output
    return subscripts, operands


@pytest.mark.parametrize("seed", range(4))
def test_random_einsums_agree_with_numpy(seed):
    rnd, rng = random.Random(seed), np.random.default_rng(seed)
    compared = 0
    for _ in range(60):
        subscripts, operands = random_einsum(rnd, rng)
        what = f"np.einsum({subscripts!r}, {', '.join(str(x.dtype) + str(list(x.shape)) for x in operands)})"
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            try:
                want = np.einsum(subscripts, *operands)
            except ValueError:
                with pytest.raises(ValueError):
                    gputrace.trace(lambda *xs: np.einsum(subscripts, *xs), tuple(operands), check_trace=False)
                continue
            got = gputrace.trace(lambda *xs: np.einsum(subscripts, *xs), tuple(operands), check_trace=False)(*operands)
        compared += 1
        want = np.asarray(want)
        assert got.dtype == want.dtype and got.shape == want.shape, what
        tolerance = 2e-2 if want.dtype == np.float16 else 1e-5
        np.testing.assert_allclose(got, want, rtol=tolerance, atol=tolerance, err_msg=what)
    assert compared >= 20  # most random subscripts are valid
