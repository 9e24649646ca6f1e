"""A pause's form, generated from its pydantic model's JSON Schema (kept in the paused node's
handle, so the dashboard needs none of the flow's code to show it), and the posted fields read
back as JSON for the model to validate (orchestrator.waits.resume)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from pydantic import JsonValue


class Widget(StrEnum):
    CHECKBOX = "checkbox"
    NUMBER = "number"
    TEXT = "text"
    CHOICE = "choice"
    JSON = "json"  # objects, lists, anything else: typed as JSON


@dataclass(frozen=True)
class FormField:
    name: str
    title: str
    widget: Widget
    required: bool
    default: JsonValue = None
    choices: tuple[str, ...] = ()
    step: str = "any"


def form_fields(schema: Mapping[str, Any]) -> list[FormField]:
    required = set(schema.get("required", ()))
    out = []
    for name, prop in (schema.get("properties") or {}).items():
        kind, choices = prop.get("type"), tuple(str(c) for c in prop.get("enum", ()))
        widget = (
            Widget.CHOICE
            if choices
            else {
                "boolean": Widget.CHECKBOX,
                "integer": Widget.NUMBER,
                "number": Widget.NUMBER,
                "string": Widget.TEXT,
            }.get(kind, Widget.JSON)
        )
        out.append(
            FormField(
                name=name,
                title=prop.get("title", name),
                widget=widget,
                required=name in required,
                default=prop.get("default"),
                choices=choices,
                step="1" if kind == "integer" else "any",
            )
        )
    return out


def form_values(schema: Mapping[str, Any], posted: Mapping[str, str]) -> dict[str, JsonValue]:
    """The posted fields as JSON: numbers and JSON fields parsed (left as text when they do
    not parse, for the model to refuse), checkboxes true when sent, empty optional fields
    left out (the model's default applies)."""
    out: dict[str, JsonValue] = {}
    for f in form_fields(schema):
        raw = posted.get(f.name)
        if f.widget is Widget.CHECKBOX:
            out[f.name] = raw is not None
        elif raw is None or (raw == "" and not f.required):
            continue
        elif f.widget in (Widget.NUMBER, Widget.JSON):
            try:
                out[f.name] = json.loads(raw)
            except ValueError:
                out[f.name] = raw
        else:
            out[f.name] = raw
    return out
