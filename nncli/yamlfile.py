"""YAML files: safe reading (no tag can run code, a key given twice is an error, every problem
one line naming the file and line) and writing in the block style configs are written in."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError


#: how many values YAML aliases may add to a document when expanded (each ``*name`` repeats
#: everything its anchor holds): far more than any config or sweep needs, far less than a
#: "billion laughs" file of nested aliases would make
MAX_ALIAS_EXPANSION = 10_000


class AliasExpansionError(yaml.YAMLError):
    """Aliases that would expand the document beyond :data:`MAX_ALIAS_EXPANSION` values, or
    one that refers to a value containing it."""

    def __init__(self, line: int, message: str):
        super().__init__(message)
        self.line, self.message = line, message


class _UniqueKeyLoader(yaml.SafeLoader):
    """yaml.SafeLoader that refuses a key given twice in one mapping (the last would win silently)
    and records each alias (its name, where it is, the node it refers to)."""

    def __init__(self, stream):
        super().__init__(stream)
        self.aliases: list[tuple[str, Any, Any]] = []

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            node = super().compose_node(parent, index)
            self.aliases.append((event.anchor, event.start_mark, node))
            return node
        return super().compose_node(parent, index)

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                dup = key in seen
            except TypeError:
                continue
            if dup:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}; each key may appear once", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def safe_load(text: str):
    """yaml.safe_load, but duplicate keys are an error, and so are aliases that would expand
    the document by more than MAX_ALIAS_EXPANSION values (AliasExpansionError), found from the
    composed node graph before anything is expanded."""
    loader = _UniqueKeyLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        if loader.aliases:
            _check_alias_expansion(node, loader.aliases)
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _check_alias_expansion(root, aliases) -> None:
    """AliasExpansionError if the aliases add more than MAX_ALIAS_EXPANSION values: the
    expanded size of every node, memoised per node (a node that aliases share is counted
    once per use but visited once), so the check takes time linear in the file."""
    memo: dict[int, int] = {}
    busy = object()

    def size(n) -> int:
        got = memo.get(id(n))
        if got is busy:
            raise _Cycle(n)
        if got is not None:
            return got
        memo[id(n)] = busy
        if isinstance(n, yaml.SequenceNode):
            total = 1 + sum(size(c) for c in n.value)
        elif isinstance(n, yaml.MappingNode):
            total = 1 + sum(size(k) + size(v) for k, v in n.value)
        else:
            total = 1
        memo[id(n)] = total
        return total

    try:
        expanded = size(root)
    except _Cycle as c:
        name, mark, _ = [a for a in aliases if a[2] is c.node][-1]
        raise AliasExpansionError(mark.line + 1, f"the alias *{name} refers to a value that contains it; "
                                                 "write the values out") from None
    if expanded - len(memo) > MAX_ALIAS_EXPANSION:
        name, mark, node = max(aliases, key=lambda a: memo.get(id(a[2]), 0))
        raise AliasExpansionError(mark.line + 1, f"the alias *{name} repeats {memo[id(node)]:,} values, and the "
                                                 f"aliases expand the file to {expanded:,}, more than nncli's limit of "
                                                 f"{MAX_ALIAS_EXPANSION:,} values added by aliases; write the values out")


class _Cycle(Exception):
    def __init__(self, node):
        self.node = node


def read_yaml(path: Path | str) -> Any:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, not a config file") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read ({e.strerror})") from None
    try:
        return safe_load(text)
    except RecursionError:
        raise ConfigError(f"{path}: YAML nested too deeply to read") from None
    except AliasExpansionError as e:
        raise ConfigError(f"{path}: line {e.line}: {e.message}") from None
    except yaml.constructor.ConstructorError as e:
        line = f"line {e.problem_mark.line + 1}: " if e.problem_mark else ""
        if "duplicate key" in (e.problem or ""):
            raise ConfigError(f"{path}: {line}{e.problem}") from None
        raise ConfigError(
            f"{path}: {line}{e.problem} (nncli reads YAML with safe loading: tags such as !!python/... are refused, no code runs)"
        ) from None
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise ConfigError(f"{path}: {where}YAML syntax error: {e.problem or e.context}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: YAML error: {str(e).splitlines()[0]}") from None


class _Dumper(yaml.SafeDumper):
    """Block style for sections, flow style for lists of scalars: ``layers: [2, 4, 1]``."""


def _represent_list(dumper, data):
    flow = all(not isinstance(x, (dict, list)) for x in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


_Dumper.add_representer(list, _represent_list)


def dump_yaml(obj) -> str:
    """``obj`` as block-style YAML in its own key order, lists of scalars in flow style."""
    return yaml.dump(obj, Dumper=_Dumper, sort_keys=False, allow_unicode=True, default_flow_style=False)
