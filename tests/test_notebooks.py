"""The notebooks in notebooks/: committed with their outputs, built from build_notebooks.py, and they execute."""
import copy
import importlib.util
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

NOTEBOOKS_DIR = Path(__file__).resolve().parents[1] / "notebooks"


def load_builder():
    spec = importlib.util.spec_from_file_location("build_notebooks", NOTEBOOKS_DIR / "build_notebooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


builder = load_builder()
NAMES = list(builder.NOTEBOOKS)


def read(name):
    return nbformat.read(NOTEBOOKS_DIR / name, as_version=4)


def test_there_are_four_notebooks():
    assert NAMES == ["01_tracing_mycell.ipynb", "02_fusion_and_kernels.ipynb", "03_validation.ipynb",
                     "04_performance.ipynb"]


@pytest.mark.parametrize("name", NAMES)
def test_committed_notebook_is_what_the_builder_writes_and_kept_its_outputs(name):
    committed = read(name)
    assert [(c.cell_type, c.source) for c in committed.cells] == \
        [(c.cell_type, c.source) for c in builder.build(name).cells], \
        f"{name} differs from notebooks/build_notebooks.py: run `python notebooks/build_notebooks.py --execute`"
    code_cells = [c for c in committed.cells if c.cell_type == "code"]
    assert all(c.execution_count is not None for c in code_cells), f"{name} was committed without executing it"
    assert not [o for c in code_cells for o in c.outputs if o.output_type == "error"]


@pytest.mark.parametrize("name", NAMES)
def test_notebook_executes(name):
    # nbclient raises CellExecutionError, naming the cell and its traceback, when a cell (or its assert) fails
    executed = builder.execute(copy.deepcopy(read(name)))
    assert all(c.execution_count is not None for c in executed.cells if c.cell_type == "code")
