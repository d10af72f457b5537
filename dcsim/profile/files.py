"""Reading and writing profile files (validated; written atomically)."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from pydantic import ValidationError

from dcsim.profile.conventions import READABLE_SCHEMA_VERSIONS, SCHEMA_VERSION
from dcsim.profile.model import Profile
from dcsim.profile.records import ProfileError


def _error_field(err: ValidationError) -> str:
    first = err.errors()[0]
    loc = ".".join(str(p) for p in first.get("loc", ())) or "<root>"
    return f"field {loc!r}: {first.get('msg', 'invalid')}"


def load_profile(path: str | os.PathLike[str]) -> Profile:
    """Read and validate a profile file; ProfileError names the file and the bad field."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ProfileError(f"calibration profile {p}: no such file") from None
    except OSError as e:
        raise ProfileError(f"calibration profile {p}: cannot read ({e.strerror or e})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ProfileError(f"calibration profile {p}: not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})") from None
    if not isinstance(data, dict):
        raise ProfileError(f"calibration profile {p}: expected a JSON object at the top level")
    version = (data.get("metadata") or {}).get("schema_version") if isinstance(data.get("metadata"), dict) else None
    if version is not None and version not in READABLE_SCHEMA_VERSIONS:
        readable = ", ".join(str(v) for v in READABLE_SCHEMA_VERSIONS)
        raise ProfileError(
            f"calibration profile {p}: field 'metadata.schema_version' is {version!r}, this dcsim reads {readable}"
            + (" (a newer dcsim wrote it: update dcsim, or refit it with this one: dcsim calibrate refit)"
               if isinstance(version, int) and version > SCHEMA_VERSION else "")
        )
    try:
        return Profile.model_validate(data)
    except ValidationError as e:
        raise ProfileError(f"calibration profile {p}: {_error_field(e)}") from None


def save_profile(profile: Profile, path: str | os.PathLike[str], indent: int | None = 1) -> None:
    """Write a profile atomically (temporary file in the same folder, then rename); `indent`
    None writes compact JSON (an imported published sweep of thousands of samples)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    text = profile.model_dump_json(indent=indent)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; a profile is a shared, committed file
        os.replace(tmp, p)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise

