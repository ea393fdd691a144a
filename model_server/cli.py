"""Command lines from dataclasses: one flag per field, typed by its annotation, optionally read from the env.

The model server's settings (serve.ServerSettings) are built this way, and so can be any other
model_server CLI whose options are a dataclass (docs/model-server.md, "Settings"). Plain Python:
no torch, no Django.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import types
import typing
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

T = TypeVar("T")


def _kind(annotation: Any) -> Any:
    """The type a flag converts to: `X | None` is X."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        kinds = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        if len(kinds) == 1:
            return kinds[0]
    return annotation


def _default(field: dataclasses.Field) -> Any:
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return None


def add_arguments(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    cls: type,
    *,
    env_prefix: str | None = None,
    defaults: bool = True,
    skip: Iterable[str] = (),
) -> None:
    """Add `--field-name` for each field of the dataclass `cls` (except `skip`).

    bool fields become --x/--no-x, tuple[int, ...] fields take one or more values, anything else
    is converted by its type (`Path | None` by Path). The default is the field's (None with
    `defaults=False`: the flag then only overrides), or `<env_prefix><FIELD_NAME>` from the
    environment when that is set, converted like the flag.
    """
    hints = typing.get_type_hints(cls)
    for field in dataclasses.fields(cls):
        if field.name in skip:
            continue
        kind = _kind(hints[field.name])
        default = _default(field) if defaults else None
        env = os.environ.get(f"{env_prefix}{field.name.upper()}") if env_prefix else None
        flag = "--" + field.name.replace("_", "-")
        if kind is bool:
            if env is not None:
                default = env.strip().lower() in ("1", "true", "yes", "on")
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=default)
        elif typing.get_origin(kind) is tuple:
            parser.add_argument(flag, type=typing.get_args(kind)[0], nargs="+", default=default)
        else:
            # argparse converts a string default with `type`, so an env value is checked like a flag.
            parser.add_argument(flag, type=kind, default=env if env is not None else default)


def from_arguments(cls: type[T], values: argparse.Namespace | Mapping[str, Any]) -> T:
    """An instance of the dataclass `cls` from the parsed values that are its fields."""
    values = vars(values) if isinstance(values, argparse.Namespace) else values
    names = {field.name for field in dataclasses.fields(cls)}
    return cls(**{name: value for name, value in values.items() if name in names})
