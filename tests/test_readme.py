"""The README tells the truth: every figure block is what its command prints now (within
tests/readme_figures.py's tolerance), and its install lines work from a clone."""

from __future__ import annotations

import re

import pytest

from tests.readme_figures import README, TOLERANCE_REL, drift, figures, run

TEXT = README.read_text(encoding="utf-8")
FIGURES = figures(TEXT)


def test_the_readme_has_figure_blocks() -> None:
    assert len(FIGURES) >= 8
    assert all(f.command.startswith("dcsim ") for f in FIGURES)


@pytest.mark.parametrize("fig", FIGURES, ids=[f.command[6:60] for f in FIGURES])
def test_figure_matches_its_command(fig) -> None:
    d = drift(fig.body, run(fig.command))
    assert not d, (f"README figure of `{fig.command}` drifted beyond {TOLERANCE_REL:.0%}: "
                   f"{d[:5]} (regenerate: make readme-figures, and say why in the text)")


def test_drift_is_caught() -> None:
    shown = "│ iteration │ 6.695 s │\n│ tokens/s │ 469,895 │\n"
    assert not drift(shown, shown.replace("6.695", "6.70"))  # within 1%
    assert drift(shown, shown.replace("6.695", "7.5"))
    assert drift(shown, shown.replace("469,895", "400,000"))
    assert drift(shown, shown.replace("iteration", "iterations"))
    assert not drift("commit 3e361ab, tp8 x1.5", "commit 3e361ab, tp8 x1.5")
    assert drift("commit 3e361ab", "commit 4e361ab")


def test_install_lines_work_from_a_clone() -> None:
    """No package index name that does not exist: dcsim is installed from a clone."""
    for line in re.findall(r"pip install[^\n`]*", TEXT):
        assert re.search(r"pip install (-e )?(\.|'\.\[\w+(,\w+)*\]')", line), line
