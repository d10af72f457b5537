"""Every notebook in notebooks/ runs top to bottom (nbclient, kernel python3) without an error,
and prints what its committed outputs show.

The what-if notebooks are documentation that executes, committed with their outputs so they
read on GitHub without running. A notebook that no longer runs against the current API fails
here, and so does one whose text outputs (tables, printed figures) drifted from the committed
ones beyond the README figures' tolerance (tests/readme_figures.py). Images are not compared.
`python -m tests.test_notebooks --write` executes them and saves the outputs.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))
TIMEOUT_S = 300  # per cell: a guard against a hang, not a speed test (speed: benchmarks/)


def execute(path: Path):  # -> nbformat.NotebookNode
    """The notebook at `path`, executed in its folder."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=TIMEOUT_S, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    return nb


def text_outputs(nb) -> list[str]:
    """The text a notebook's code cells show: streams and plain-text results, cell by cell."""
    out = []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        parts = []
        for o in cell.get("outputs", []):
            if o.get("output_type") == "stream":
                parts.append(o.get("text", ""))
            elif o.get("output_type") in ("execute_result", "display_data"):
                parts.append(o.get("data", {}).get("text/plain", "") if "image/png" not in
                             o.get("data", {}) else "")
        out.append("".join(parts))
    return out


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_and_shows_its_committed_outputs(path: Path) -> None:
    import nbformat

    from tests.readme_figures import drift

    committed = text_outputs(nbformat.read(path, as_version=4))
    nb = execute(path)  # raises CellExecutionError naming the cell on the first failure
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors
    assert any(committed), f"{path.name} is committed without outputs (python -m tests.test_notebooks --write)"
    for i, (shown, fresh) in enumerate(zip(committed, text_outputs(nb), strict=True)):
        assert not drift(shown, fresh), (f"{path.name} code cell {i}: {drift(shown, fresh)} "
                                        "(python -m tests.test_notebooks --write)")


def main(argv: list[str]) -> int:
    """--write: execute every notebook and save it with its outputs."""
    import nbformat

    if argv != ["--write"]:
        print("usage: python -m tests.test_notebooks --write")
        return 2
    for path in NOTEBOOKS:
        nb = execute(path)
        nbformat.write(nb, path)
        print(f"executed and saved {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
