"""MkDocs hooks: the reference pages are written from the code when the site is built, so they
cannot drift from it. ``<!-- flowrt --help -->`` becomes every command's ``--help`` (argparse's
own text), ``<!-- flowrt schema -->`` the JSON Schema of workflow files (what ``flowrt schema``
prints)."""

from __future__ import annotations

import argparse
import json
import os
from typing import Any


def _helps(parser: argparse.ArgumentParser, name: str) -> list[tuple[str, str]]:
    """``(command, its help)`` for ``parser`` and, depth first, each of its sub-commands."""
    found = [(name, parser.format_help())]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub, child in action.choices.items():
                found += _helps(child, f"{name} {sub}")
    return found


def cli_reference() -> str:
    """Markdown: one section per command, with its ``--help`` text."""
    from flowrt.cli import _parser

    os.environ["COLUMNS"] = "100"  # argparse wraps to the terminal: the same width every build
    sections = [f"## `{name}`\n\n```text\n{text.rstrip()}\n```\n" for name, text in _helps(_parser(), "flowrt")]
    return "\n".join(sections)


def schema_reference() -> str:
    """Markdown: the JSON Schema of workflow files."""
    from flowrt._files import WorkflowFile

    schema = json.dumps(WorkflowFile.model_json_schema(by_alias=True), indent=2)
    return f"```json\n{schema}\n```\n"


def on_page_markdown(markdown: str, **_: Any) -> str:
    """Fill the reference pages' markers."""
    if "<!-- flowrt --help -->" in markdown:
        markdown = markdown.replace("<!-- flowrt --help -->", cli_reference())
    if "<!-- flowrt schema -->" in markdown:
        markdown = markdown.replace("<!-- flowrt schema -->", schema_reference())
    return markdown
