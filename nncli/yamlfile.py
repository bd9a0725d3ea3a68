"""YAML files: safe reading (no tag can run code, a key given twice is an error, every problem
one line naming the file and line) and writing in the block style configs are written in."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError


class _UniqueKeyLoader(yaml.SafeLoader):
    """yaml.SafeLoader that refuses a key given twice in one mapping (the last would win silently)."""

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
    """yaml.safe_load, but duplicate keys are an error."""
    return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass


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
