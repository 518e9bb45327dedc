"""The configuration reference is generated from the schema, and the committed copy is current."""

from __future__ import annotations

import dataclasses
import enum
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

from omegaconf import MISSING

from mlauto.config import reference
from mlauto.config.schema import Config
from mlauto.config.store import CONF_DIR

DOC = Path(__file__).resolve().parents[3] / "docs" / "configuration.md"


def schema_keys(cls: type, prefix: str = "") -> list[str]:
    """Every dotted key of the schema, walked independently of the generator."""
    keys = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        key, tp = f"{prefix}{f.name}", hints[f.name]
        keys.append(key)
        if typing.get_origin(tp) is typing.Union:  # Optional[X]
            tp = next(a for a in typing.get_args(tp) if a is not type(None))
        args = typing.get_args(tp)
        if dataclasses.is_dataclass(tp):
            keys += schema_keys(tp, key + ".")
        elif typing.get_origin(tp) is dict and dataclasses.is_dataclass(args[1]):
            keys += schema_keys(args[1], key + ".<name>.")
        elif typing.get_origin(tp) is list and dataclasses.is_dataclass(args[0]):
            keys += schema_keys(args[0], key + "[].")
    return keys


def test_committed_reference_is_current() -> None:
    assert DOC.read_text() == reference.render(), "docs/configuration.md is stale: python -m mlauto.config.reference"


def test_every_schema_key_and_group_option_is_listed() -> None:
    text = reference.render()
    keys = schema_keys(Config)
    assert len(keys) > 100
    missing = [k for k in keys if f"| `{k}` |" not in text]
    assert missing == []
    for path in sorted(CONF_DIR.glob("*/*.yaml")):
        assert f"`{path.stem}`" in text, path


def test_render_is_deterministic() -> None:
    assert reference.render() == reference.render()


class Colour(enum.Enum):
    RED = "red"
    GREEN = "green"


@dataclass
class Inner:
    """An inner section."""

    depth: int = 2  # how deep


@dataclass
class Member:
    weight: float = 1.0


@dataclass
class Toy:
    # the colour to paint with,
    # over two lines
    colour: Colour = Colour.RED  # and its trailing note

    shade: Optional[Colour] = None
    # a comment block that a blank line cuts off

    plain: str = "x"
    sizes: List[float] = field(default_factory=lambda: [0.5, 1.0])  # sizes
    extra: Dict[str, Any] = field(default_factory=dict)
    inner: Inner = field(default_factory=Inner)
    members: Dict[str, Member] = field(default_factory=dict)
    rows: List[Member] = field(default_factory=list)
    maybe: Optional[Inner] = None
    needed: str = MISSING  # OmegaConf: must be set

    def method(self) -> int:  # not a field
        return 1


def test_comments_above_and_on_the_line_describe_a_field() -> None:
    notes = reference.field_comments(Toy)
    assert notes["colour"] == "the colour to paint with, over two lines and its trailing note"
    assert "shade" not in notes and "plain" not in notes  # the blank line cut the block off
    assert notes["sizes"] == "sizes"
    assert "method" not in notes


def test_toy_schema_renders_types_defaults_enums_and_nested_sections(tmp_path: Path) -> None:
    conf = tmp_path / "conf"
    (conf / "paint").mkdir(parents=True)
    (conf / "paint" / "bright.yaml").write_text("# @package _global_\n# loud colours\ncolour: red\n")
    (conf / "paint" / "dull.yaml").write_text("colour: green\n")
    (conf / "config.yaml").write_text("defaults:\n  - paint: dull\n  - _self_\n")
    text = reference.render(Toy, conf, tmp_path / "no-experiments")
    rows = {line.split("|")[1].strip(): line for line in text.splitlines() if line.startswith("| `")}
    assert "one of: `red`, `green`" in rows["`colour`"] and "| `red` |" in rows["`colour`"]
    assert "one of: `red`, `green` or null" in rows["`shade`"] and "`null`" in rows["`shade`"]
    assert "list of float" in rows["`sizes`"] and "`[0.5, 1.0]`" in rows["`sizes`"]
    assert "map of str to any" in rows["`extra`"]
    assert "| section |" in rows["`inner`"] and "(#inner)" in rows["`inner`"]
    assert "how deep" in rows["`inner.depth`"] and "### `inner`\n\nAn inner section." in text
    assert "`members.<name>.weight`" in rows and "(#membersname)" in rows["`members`"]
    assert "list of section" in rows["`rows`"] and "`rows[].weight`" in rows and "(#rows)" in rows["`rows`"]
    assert "`null`; see [`maybe`](#maybe)" in rows["`maybe`"] and "`maybe.depth`" in rows
    assert sorted(schema_keys(Toy)) == sorted(k.strip("`") for k in rows if k != "`paint`")  # both walks agree
    assert "| required |" in rows["`needed`"]
    assert "| `paint` | `dull` | `bright`, `dull` |" in text
    assert "- `bright`: loud colours" in text


def test_check_fails_on_a_stale_file_and_passes_on_a_fresh_one(tmp_path: Path) -> None:
    out = tmp_path / "configuration.md"
    assert reference.main(["--check", "--output", str(out)]) == 1  # missing
    out.write_text("stale\n")
    assert reference.main(["--check", "--output", str(out)]) == 1
    assert reference.main(["--output", str(out)]) == 0
    assert reference.main(["--check", "--output", str(out)]) == 0
    assert out.read_text() == reference.render()
