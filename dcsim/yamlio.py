"""Reading YAML that users write: safe types only, and no document that is a trap.

PyYAML's safe loader lets the last of two equal keys win silently, expands aliases without a
bound (a "billion laughs" anchor bomb of a few lines becomes gigabytes once walked) and composes
nested collections recursively (100,000 levels raise RecursionError). This loader refuses all
three with one line that says where.
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from dcsim.errors import InputError

# Deepest nesting a scenario or preset needs is about 6 (jobs.0.workload.parallelism.tp); 64
# leaves room and stays far below Python's recursion limit (1,000 frames).
MAX_DEPTH = 64
# Nodes a document may hold once its aliases are expanded: the largest bundled file has a few
# hundred; 100,000 allows generated files while an anchor bomb stops in microseconds.
MAX_EXPANDED_NODES = 100_000


class YamlInputError(InputError):
    """A YAML text that cannot be read safely; the message is one line naming where."""


class _Loader(yaml.SafeLoader):
    """SafeLoader with a nesting bound and duplicate keys refused."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:  # type: ignore[override]
        """The base class's node, refused beyond MAX_DEPTH levels (before Python's own limit)."""
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark
                raise YamlInputError(f"line {mark.line + 1}: nested deeper than {MAX_DEPTH} levels")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        """The base class's mapping, refused when a key appears twice (the last would win)."""
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if isinstance(key_node, ScalarNode):
                key = self.construct_object(key_node, deep=deep)  # type: ignore[no-untyped-call]
                try:
                    duplicate = key in seen
                    seen.add(key)
                except TypeError:  # an unhashable key: the base class says so
                    continue
                if duplicate:
                    line = key_node.start_mark.line + 1
                    raise YamlInputError(f"line {line}: duplicate key {str(key)[:60]!r} "
                                         "(each key may appear once in a mapping)")
        return super().construct_mapping(node, deep=deep)


def _expanded_size(root: Node, limit: int) -> int:
    """Nodes in the document once aliases are expanded, counted up to `limit` (memoized, so a
    shared subtree is walked once however often it is referenced)."""
    sizes: dict[int, int] = {}
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        if id(node) in sizes and not done:
            continue
        children: list[Node] = []
        if isinstance(node, SequenceNode):
            children = list(node.value)
        elif isinstance(node, MappingNode):
            children = [n for pair in node.value for n in pair]
        if not done:
            sizes[id(node)] = -1  # in progress (a recursive alias counts as over the limit)
            stack.append((node, True))
            stack.extend((c, False) for c in children if id(c) not in sizes)
            continue
        total = 1
        for c in children:
            s = sizes.get(id(c), limit + 1)
            total += limit + 1 if s < 0 else s
        sizes[id(node)] = min(total, limit + 1)
    return sizes[id(root)]


def load_yaml(text: str, where: str = "the document") -> Any:
    """Parse one YAML document (safe types) or raise YamlInputError naming `where`."""
    try:
        loader = _Loader(text)
    except yaml.YAMLError as exc:  # the reader refuses control characters before any parsing
        first = " ".join(str(exc).split())[:120]
        raise YamlInputError(f"{where}: not valid YAML ({first})") from None
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        size = _expanded_size(node, MAX_EXPANDED_NODES)
        if size > MAX_EXPANDED_NODES:
            raise YamlInputError(f"{where}: more than {MAX_EXPANDED_NODES:,} values once its "
                                 "aliases (*name) are expanded; write the values out or use fewer")
        return loader.construct_document(node)
    except YamlInputError as exc:
        raise YamlInputError(f"{where}: {exc}" if not str(exc).startswith(where) else str(exc)) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = " ".join(str(exc.problem or exc.context or "").split())[:120]
        raise YamlInputError(f"{where}: not valid YAML{at}: {problem}") from None
    except yaml.YAMLError as exc:
        first = " ".join(str(exc).split())[:120]
        raise YamlInputError(f"{where}: not valid YAML ({first})") from None
    except (ValueError, TypeError, OverflowError) as exc:  # a scalar constructor gave up
        raise YamlInputError(f"{where}: a value cannot be read ({str(exc)[:100]})") from None
    finally:
        loader.dispose()
