"""The one error type topology builders raise: a ValueError whose message is one clear line."""

from __future__ import annotations
from dcsim.errors import InputError


class TopologyError(InputError):
    """A bad topology field; the message names the field and what is allowed."""
