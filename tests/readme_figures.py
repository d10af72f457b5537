"""The README's figures come from the commands shown beside them, and stay so.

A figure block in README.md is

    <!-- figure: dcsim simulate examples/x.yaml --no-timing -->
    ```text
    ...what the command printed...
    ```
    <!-- /figure -->

`python -m tests.readme_figures --write` (`make readme-figures`) runs every command (in-process,
through the CLI's own entry point, output as it is when piped) and rewrites the blocks;
tests/test_readme.py runs them and fails when a figure drifted: the text must be the same and
every number within TOLERANCE_REL (or one unit of the last digit shown). The simulator is
deterministic (same scenario and seed, same result bit for bit), so the tolerance only absorbs
floating-point differences between platforms.
"""

from __future__ import annotations

import argparse
import re
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
TOLERANCE_REL = 0.01

_BLOCK = re.compile(r"<!-- figure: (?P<cmd>.+?) -->\n```(?P<lang>\w*)\n(?P<body>.*?)```\n"
                    r"<!-- /figure -->", re.S)
# a number standing alone (not part of a name like tp8, 175b or a commit hash like 3e361ab)
_NUMBER = re.compile(r"(?<![\w.])[-+]?\d[\d,]*(?:\.\d+)?(?:[eE][-+]?\d+)?(?![\w.])")
_RULES = re.compile(r"[\s─━┃│┏┓┗┛┡┩└┘┳┻╇┼╭╮╰╯]+")


@dataclass
class Figure:
    """One figure block of the README: its command and the text it shows."""

    command: str
    body: str
    start: int
    end: int


def figures(text: str) -> list[Figure]:
    """The figure blocks of a README text, in order."""
    return [Figure(m["cmd"].strip(), m["body"], m.start(), m.end()) for m in _BLOCK.finditer(text)]


def run(command: str) -> str:
    """What `command` prints on stdout (a `dcsim ...` command, run in-process); for a command
    that shows a bad-input error (exit 2), that one line of stderr."""
    from typer.testing import CliRunner

    from dcsim.app.cli import app

    args = shlex.split(command)
    if args[:1] != ["dcsim"]:
        raise ValueError(f"figure command must start with dcsim: {command}")
    res = CliRunner().invoke(app, args[1:], catch_exceptions=False)
    if res.exit_code == 2:
        return f"$ {command}\n{res.stderr.strip()}\n"
    if res.exit_code != 0:
        raise RuntimeError(f"{command}: exit {res.exit_code}: {res.stderr.strip()}")
    return "\n".join(line.rstrip() for line in res.stdout.strip("\n").splitlines()) + "\n"


def _split(text: str) -> tuple[str, list[str]]:
    """The text with its numbers taken out (and table rules and spacing normalised), and the
    numbers."""
    numbers = _NUMBER.findall(text)
    words = _RULES.sub(" ", _NUMBER.sub("#", text)).strip()
    return words, numbers


def _close(a: str, b: str) -> bool:
    if a == b:
        return True
    x, y = float(a.replace(",", "")), float(b.replace(",", ""))
    unit = 10.0 ** -len(a.split(".")[1]) if "." in a and "e" not in a.lower() else 1.0
    return abs(x - y) <= max(TOLERANCE_REL * max(abs(x), abs(y)), unit)


def drift(shown: str, fresh: str) -> list[str]:
    """How a figure shown in the README differs from what its command prints now ([] if not)."""
    w1, n1 = _split(shown)
    w2, n2 = _split(fresh)
    if w1 != w2 or len(n1) != len(n2):
        a, b = w1.split(), w2.split()
        i = next((k for k, (p, q) in enumerate(zip(a, b, strict=False)) if p != q), min(len(a), len(b)))
        return [f"text differs near {' '.join(a[max(0, i - 4):i + 4])!r} vs "
                f"{' '.join(b[max(0, i - 4):i + 4])!r}"]
    return [f"{a} shown, {b} now" for a, b in zip(n1, n2, strict=True) if not _close(a, b)]


def rewrite(text: str) -> str:
    """The README text with every figure block regenerated."""
    out, last = [], 0
    for f in figures(text):
        m = _BLOCK.match(text, f.start)
        assert m is not None
        out.append(text[last:f.start])
        out.append(f"<!-- figure: {f.command} -->\n```{m['lang']}\n{run(f.command)}```\n"
                   "<!-- /figure -->")
        last = f.end
    return "".join(out) + text[last:]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--write", action="store_true", help="rewrite README.md's figure blocks")
    a = ap.parse_args(argv)
    text = README.read_text(encoding="utf-8")
    if a.write:
        README.write_text(rewrite(text), encoding="utf-8")
        print(f"rewrote {len(figures(text))} figure block(s) in {README}")
        return 0
    bad = 0
    for f in figures(text):
        d = drift(f.body, run(f.command))
        bad += bool(d)
        print(("DRIFT " if d else "ok    ") + f.command + ("".join("\n  " + x for x in d)))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
