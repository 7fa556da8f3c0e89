"""Read deploy/observability/logstash/pipeline/pleno.conf the way Logstash does, for the tests.

The syntax comes from `logstash-pipeline-parser` (a pyparsing port of Logstash's own treetop
grammar). One detail needs care: that parser unescapes backslashes in every string, as if
`config.support_escapes` were on, while Logstash by default (and in our config/logstash.yml) keeps
strings raw. So the grok pattern handed to the grok engine is the raw text between the quotes in
the file, found by looking for the literal whose unescaped value is exactly what the parser
returned. Nothing is copied: change the .conf and the tests run the new pattern.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyparsing as pp
from logstash_pipeline_parser import Pipeline  # type: ignore[import-untyped]
from pygrok import Grok  # type: ignore[import-untyped]

from tests.support.manifests import DEPLOY

LOGSTASH = DEPLOY / "observability" / "logstash"
PIPELINE = LOGSTASH / "pipeline" / "pleno.conf"
GROK_ID = "text-grok"


@dataclass(frozen=True)
class Plugin:
    """One plugin block of the pipeline: its name (`grok`) and its settings, values as parsed."""

    name: str
    settings: dict[str, Any]
    section: str  # input, filter or output


def parse(path: Path = PIPELINE) -> list[Any]:
    """The parser's tree; raises (pyparsing.ParseException) if the file is not a valid pipeline."""
    pipeline = Pipeline(path.read_text())
    # The parser turns the values of some keys into Path objects; a key like `path` can also be a
    # field name in a hash (rename => { "path" => ... }). Keep every value as Logstash does: text.
    for name in list(pipeline.get_types()):
        pipeline.remove_type(name)
    tree: list[Any] = pipeline.parse()
    return tree


def _setting_value(value: list[Any]) -> Any:
    # A setting's value is a one-element list; a hash is a list of [key, [value]] pairs.
    inner = value[0]
    if isinstance(inner, list) and all(
        isinstance(pair, list) and len(pair) == 2 and isinstance(pair[0], str) for pair in inner
    ):
        return {key: _setting_value(item) for key, item in inner}
    return inner


def _is_plugin(node: Any) -> bool:
    return (
        isinstance(node, list)
        and len(node) == 2
        and isinstance(node[0], str)
        and node[0] not in {"if", "else if", "else"}
        and isinstance(node[1], list)
        and all(
            isinstance(item, list) and len(item) == 2 and isinstance(item[0], str)
            for item in node[1]
        )
    )


def _walk(node: Any, section: str) -> Iterator[Plugin]:
    if _is_plugin(node):
        settings = {key: _setting_value(value) for key, value in node[1]}
        yield Plugin(node[0], settings, section)
        return
    if isinstance(node, list):
        for child in node:
            yield from _walk(child, section)


def plugins(path: Path = PIPELINE) -> list[Plugin]:
    """Every plugin block in the file, in order, including those inside conditionals."""
    found: list[Plugin] = []
    for section, body in parse(path):
        for node in body:
            found.extend(_walk(node, section))
    return found


def plugin_by_id(plugin_id: str, path: Path = PIPELINE) -> Plugin:
    matches = [plugin for plugin in plugins(path) if plugin.settings.get("id") == plugin_id]
    assert len(matches) == 1, f"expected one plugin with id {plugin_id!r}, found {len(matches)}"
    return matches[0]


def string_literals(source: str) -> Iterator[tuple[str, str]]:
    """(quote, raw text) of every quoted string outside comments, per Logstash's grammar:
    a string runs to the next unescaped quote of its kind; `#` outside strings starts a comment;
    `/.../` after `=~` or `!~` is a regexp, not a string."""
    index, length = 0, len(source)
    while index < length:
        char = source[index]
        if char == "#":
            index = source.find("\n", index)
            index = length if index < 0 else index
        elif char in "'\"/":
            if char == "/" and not source[:index].rstrip().endswith(("=~", "!~")):
                index += 1
                continue
            end = index + 1
            while end < length and source[end] != char:
                end += 2 if source[end] == "\\" and source[end + 1 : end + 2] == char else 1
            if char != "/":
                yield char, source[index + 1 : end]
            index = end + 1
        else:
            index += 1


def raw_string(parsed_value: str, path: Path = PIPELINE) -> str:
    """The raw file text of the string literal that the parser read as `parsed_value`."""
    raws: set[str] = set()
    for quote, raw in string_literals(path.read_text()):
        unescaped = pp.QuotedString(quote, esc_char="\\").parse_string(quote + raw + quote)[0]
        if unescaped == parsed_value:
            raws.add(raw)
    assert len(raws) == 1, f"no single literal in {path.name} parses to {parsed_value!r}: {raws}"
    return raws.pop()


@dataclass(frozen=True)
class GrokSettings:
    source_field: str
    pattern: str
    definitions: dict[str, str]


@functools.cache
def grok_settings(path: Path = PIPELINE, plugin_id: str = GROK_ID) -> GrokSettings:
    """The `match` pattern and `pattern_definitions` of the grok filter, as Logstash reads them."""
    plugin = plugin_by_id(plugin_id, path)
    assert plugin.name == "grok"
    match = plugin.settings["match"]
    assert isinstance(match, dict), match
    assert len(match) == 1, "one field, one pattern"
    ((field, pattern),) = match.items()
    definitions = plugin.settings.get("pattern_definitions", {})
    return GrokSettings(
        source_field=field,
        pattern=raw_string(pattern, path),
        definitions={name: raw_string(regex, path) for name, regex in definitions.items()},
    )


@functools.cache
def grok(path: Path = PIPELINE, plugin_id: str = GROK_ID) -> Grok:
    """The pipeline's grok pattern compiled by pygrok, with the standard pattern library."""
    settings = grok_settings(path, plugin_id)
    return Grok(settings.pattern, custom_patterns=settings.definitions)


def grok_match(line: str) -> dict[str, Any] | None:
    """Captures of the pipeline's grok for one line, without the groups that did not take part
    (Logstash sets no field for those), or None when the line does not match."""
    captures: dict[str, Any] | None = grok().match(line)
    if captures is None:
        return None
    return {name: value for name, value in captures.items() if value is not None}


TELEMETRY = DEPLOY.parent / "docs" / "telemetry.md"


@dataclass(frozen=True)
class DocumentedField:
    type: str  # "string", "integer", "string or null"
    present: str  # "all", "in a request", "in a traced request", "access", ...


def documented_json_fields() -> dict[str, DocumentedField]:
    """The JSON table of docs/telemetry.md (the contract): field -> type and when it is present."""
    section = TELEMETRY.read_text().split("### JSON", 1)[1].split("###", 1)[0]
    fields: dict[str, DocumentedField] = {}
    for row in section.splitlines():
        if not row.startswith("|"):
            continue
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        names = [name for name in cells[0].split("`") if name.strip(" ,")]
        if cells[0] == "Field" or cells[0].startswith("---") or len(cells) < 3:
            continue
        for name in names:
            fields[name] = DocumentedField(type=cells[1], present=cells[2])
    return fields
