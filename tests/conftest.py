import numpy as np
import pytest

from gputrace import nn


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    """Every test session builds into its own kernel cache, never the user's."""
    monkeypatch.setenv("GPUTRACE_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cache"))


class MyCell(nn.Module):
    """The seed's torch.jit.trace example, written with gputrace.nn."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(4, 4, seed=0)

    def forward(self, x, h):
        new_h = np.tanh(self.linear(x) + h)
        return new_h, new_h


@pytest.fixture
def my_cell():
    return MyCell()
