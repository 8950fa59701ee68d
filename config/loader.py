"""Load and validate finops.yaml; every error names the file, line, key path, problem and a right value."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from config.model import FinOpsConfig


class ConfigError(Exception):
    """finops.yaml cannot be used. The message lists every problem found."""


KeyPath = tuple[str | int, ...]


def _line_index(node: yaml.Node, path: KeyPath, out: dict[KeyPath, int]) -> None:
    out[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value
            out[(*path, key)] = key_node.start_mark.line + 1
            _line_index(value_node, (*path, key), out)
            out[(*path, key)] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _line_index(item, (*path, i), out)


def _format_path(path: KeyPath) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


def _example_for(loc: KeyPath) -> Any:
    """The example value declared on the model field at ``loc``, if any."""
    model: type[BaseModel] | None = FinOpsConfig
    example: Any = None
    for part in loc:
        if model is None or isinstance(part, int):
            continue
        field = model.model_fields.get(str(part))
        if field is None:
            return None
        example = field.examples[0] if field.examples else None
        annotation = field.annotation
        model = _model_in(annotation)
    return example


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def parse_config(text: str, source: str = "finops.yaml") -> FinOpsConfig:
    try:
        root = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "context_mark", None) or getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        context = getattr(exc, "context", None)
        detail = (
            f"{context}: {getattr(exc, 'problem', exc)}" if context else str(getattr(exc, "problem", exc))
        )
        raise ConfigError(f"{where}: not valid YAML ({detail}); check quoting and indentation") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}:1: the file must be a mapping of keys (currency, teams, budgets, ...)")
    lines: dict[KeyPath, int] = {}
    if root is not None:
        _line_index(root, (), lines)
    try:
        return FinOpsConfig.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc: KeyPath = tuple(p for p in err["loc"] if not (isinstance(p, str) and "[" in p))
            line = _nearest_line(loc, lines)
            if err["type"] == "extra_forbidden":
                what = f"unknown key {str(loc[-1])!r}; remove it or check its spelling"
            else:
                what = err["msg"]
                if "input" in err and err["type"] not in ("missing",) and not isinstance(err["input"], dict):
                    what += f" (got {json.dumps(err['input'], default=str)})"
            example = _example_for(loc)
            hint = f"; example: {json.dumps(example, default=str)}" if example is not None else ""
            problems.append(f"{source}:{line}: {_format_path(loc)}: {what}{hint}")
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(problems)) from None


def _nearest_line(loc: KeyPath, lines: dict[KeyPath, int]) -> int:
    for n in range(len(loc), -1, -1):
        if loc[:n] in lines:
            return lines[loc[:n]]
    return 1


def load_config(path: Path) -> FinOpsConfig:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: config file not found; copy config/finops.example.yaml there or pass --config"
        ) from None
    return parse_config(text, str(path))
