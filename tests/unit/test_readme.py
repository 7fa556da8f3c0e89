"""The README's settings table is the user's view of Settings: keep them identical."""

from __future__ import annotations

import re
from pathlib import Path

from pleno.settings import Settings, env_name

README = Path(__file__).resolve().parents[2] / "README.md"
ROW = re.compile(r"^\| `((?:PLENO|OTEL)_[A-Z_]+)` \| (.+?) \| .+ \|$")
# Defaults that are not a literal value, in the words the README uses.
DESCRIBED_DEFAULTS = {"migrate_on_start": "true for SQLite, false otherwise"}


def documented_defaults() -> dict[str, str]:
    rows = (ROW.match(line) for line in README.read_text().splitlines())
    return {match[1]: match[2] for match in rows if match}


def rendered_default(name: str) -> str:
    if name in DESCRIBED_DEFAULTS:
        return DESCRIBED_DEFAULTS[name]
    value = Settings.model_fields[name].get_default(call_default_factory=True)
    if value is None:
        return "(unset)"
    if value == []:
        return "(empty)"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    return f"`{value}`"


def test_readme_documents_every_setting_with_its_default() -> None:
    documented = documented_defaults()
    expected = {env_name(name): rendered_default(name) for name in Settings.model_fields}
    assert documented == expected


def test_readme_leads_with_the_two_commands() -> None:
    text = README.read_text()
    first_block = text.split("```console", 1)[1].split("```", 1)[0]
    commands = [line.split("#")[0].strip() for line in first_block.strip().splitlines()]
    assert commands == ["make run", "make test"]
