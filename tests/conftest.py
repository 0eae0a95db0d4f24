import numpy as np
import pytest


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    """Every test session builds into its own kernel cache, never the user's."""
    monkeypatch.setenv("GPUTRACE_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cache"))
