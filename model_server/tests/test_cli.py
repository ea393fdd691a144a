"""A command line made from a dataclass: one typed flag per field, defaults from the field or the environment."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from model_server.cli import add_arguments, from_arguments


@dataclass(frozen=True)
class Options:
    checkpoint: Path | None = None
    name: str = "partner"
    port: int = 8001
    delay_ms: float = 5.0
    amp: bool = True
    sizes: tuple[int, ...] = (1, 2)
    device: str = field(default_factory=lambda: "cpu")


def parse(argv: list[str], **options: object) -> Options:
    parser = argparse.ArgumentParser()
    add_arguments(parser, Options, **options)
    return from_arguments(Options, parser.parse_args(argv))


def test_each_field_is_a_flag_converted_by_its_type() -> None:
    parsed = parse(["--checkpoint", "x.pt", "--port", "9", "--delay-ms", "2.5", "--no-amp", "--sizes", "3", "4"])
    assert parsed == Options(checkpoint=Path("x.pt"), port=9, delay_ms=2.5, amp=False, sizes=[3, 4])


def test_without_flags_every_field_keeps_its_default() -> None:
    assert parse([]) == Options()


def test_the_environment_gives_defaults_that_flags_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APP_PORT", "7000")
    monkeypatch.setenv("APP_AMP", "0")
    assert parse([], env_prefix="APP_") == Options(port=7000, amp=False)
    assert parse(["--port", "7001"], env_prefix="APP_").port == 7001


def test_a_bad_environment_value_is_refused_like_a_bad_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APP_PORT", "eighty")
    with pytest.raises(SystemExit):
        parse([], env_prefix="APP_")


def test_override_only_flags_default_to_none_and_skipped_fields_have_none() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser, Options, defaults=False, skip=("device",))
    values = vars(parser.parse_args(["--port", "1"]))
    assert values["port"] == 1 and values["name"] is None and "device" not in values
