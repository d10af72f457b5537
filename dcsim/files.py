"""User-given paths: check them before the work, write outputs atomically.

Inputs: a directory, a missing or unreadable file, or a file that is not UTF-8 is a
`PathError` naming the flag and the path. Outputs: checked before minutes of simulation (an
existing directory where a file goes, a file where a directory goes, a parent that cannot be
created, an image extension matplotlib cannot write), then written to a temporary name in the
same folder and renamed, so an interrupted run never leaves a half-written file.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from dcsim.errors import PathError

__all__ = ["check_input_file", "read_input_text", "check_output_file", "check_output_dir",
           "atomic_path", "atomic_write_text", "IMAGE_SUFFIXES"]

# What matplotlib's Agg-based savefig writes without extra packages (FigureCanvasBase formats).
IMAGE_SUFFIXES = (".png", ".pdf", ".svg", ".jpg", ".jpeg", ".eps", ".ps", ".webp", ".tif",
                  ".tiff")


def _label(flag: str, path: Path) -> str:
    """How an error names the path: the flag it came from (`--out x.png`) or its role."""
    return f"{flag} {path}"


def check_input_file(path: Path, flag: str) -> Path:
    """`path` is an existing, readable regular file, or a PathError naming `flag`."""
    p = Path(path)
    if not p.exists():
        raise PathError(f"{_label(flag, p)}: no such file")
    if p.is_dir():
        raise PathError(f"{_label(flag, p)}: is a directory, not a file")
    if not os.access(p, os.R_OK):
        raise PathError(f"{_label(flag, p)}: not readable (permission denied)")
    return p


def read_input_text(path: Path, flag: str) -> str:
    """The text of a UTF-8 input file; a PathError naming the flag, the path and the first bad
    byte otherwise."""
    p = check_input_file(path, flag)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise PathError(f"{_label(flag, p)}: cannot read ({exc.strerror})") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PathError(f"{_label(flag, p)}: not a UTF-8 text file (byte 0x{data[exc.start]:02x} "
                        f"at offset {exc.start})") from None


def _check_parent(p: Path, flag: str) -> None:
    parent = p.parent if str(p.parent) else Path(".")
    probe = parent
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise PathError(f"{_label(flag, p)}: cannot create it, {probe} is a file")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise PathError(f"{_label(flag, p)}: cannot create it, {probe} is not writable")


def check_output_file(path: Path, flag: str, suffixes: tuple[str, ...] | None = None) -> Path:
    """`path` can be written as a file (a file there is replaced); a PathError otherwise.
    With `suffixes`, its extension must be one of them."""
    p = Path(path)
    if p.is_dir() or str(path).endswith(os.sep):
        raise PathError(f"{_label(flag, p)}: is a directory; give a file name")
    if suffixes is not None and p.suffix.lower() not in suffixes:
        raise PathError(f"{_label(flag, p)}: unsupported extension {p.suffix or '(none)'!r}; "
                        f"use one of {', '.join(suffixes)}")
    if p.exists() and not os.access(p, os.W_OK):
        raise PathError(f"{_label(flag, p)}: exists and is not writable")
    _check_parent(p, flag)
    return p


def check_output_dir(path: Path, flag: str) -> Path:
    """`path` is, or can be created as, a directory; a PathError otherwise."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise PathError(f"{_label(flag, p)}: exists and is a file; give a directory")
    if p.is_dir() and not os.access(p, os.W_OK | os.X_OK):
        raise PathError(f"{_label(flag, p)}: directory is not writable")
    _check_parent(p, flag)
    return p


@contextmanager
def atomic_path(path: Path, flag: str = "output") -> Iterator[Path]:
    """Yield a temporary path beside `path` (same extension) to write; renamed onto `path`
    when the block succeeds, removed when it fails or is interrupted."""
    p = Path(path)
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PathError(f"{_label(flag, p)}: cannot create {p.parent} ({exc.strerror})") from None
    # a name of our own beside the target (same file system, so the rename is atomic); the
    # writer creates it, so it gets the usual permissions (umask), not mkstemp's 0600
    tmp = p.parent / f".{p.stem}.{os.getpid()}.tmp{p.suffix}"
    try:
        yield tmp
        os.replace(tmp, p)
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_write_text(path: Path, text: str, flag: str = "output") -> Path:
    """Write `text` to `path` through a temporary file and a rename."""
    with atomic_path(path, flag) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)
