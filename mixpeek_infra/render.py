"""Human-readable output of the CLI: plans as tables, text made safe for a terminal."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from .plan import NamespacePlan
from .schema import clip

MAX_TEXT = 300  # characters of a path or message echoed to the terminal


def clean(text: Any, limit: int = MAX_TEXT) -> str:
    """Text safe for a terminal: long text cut, URL credentials redacted, control and invisible characters
    escaped."""
    text = clip(str(text), limit)
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text)


def fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    return clean(value, 200)


def _param(value: Any) -> str:
    """An extractor param value in the plan table: JSON-like, cut short (the plan's JSON has it whole)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return fmt(value) if not isinstance(value, str) else clean(value, 60)
    try:
        return clean(json.dumps(value, sort_keys=True), 60)
    except (TypeError, ValueError):
        return clean(value, 60)


def count(items: Any, noun: str, plural: str | None = None) -> str:
    return f"{len(items)} {noun if len(items) == 1 else (plural or noun + 's')}"


def _table(headers: list[str], rows: list[list[str]], indent: str = "  ") -> list[str]:
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
    lines = [indent + "  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip()]
    lines += [indent + "  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]
    return lines


def render_plan(plan: NamespacePlan, deployment: Mapping[str, Any] | None = None) -> str:
    """A namespace plan as human-readable tables; `deployment` (a stack file's namespace) adds what the
    stack deploys: key, protection, Qdrant target, Ray head."""
    lines = [f"namespace {fmt(plan.namespace_name)}"]
    if plan.description:
        lines.append(f"  description: {fmt(plan.description)}")
    lines.append(f"  mode: {fmt(plan.mode)}")
    lines.append(f"  auto_create_indexes: {fmt(plan.auto_create_indexes)}")
    for name, value in plan.labels.items():
        lines.append(f"  {name}: {fmt(value)}")
    if plan.warnings:
        lines += ["", "  warnings"] + [f"    {clean(p)}: {clean(m)}" for p, m in plan.warnings]
    lines += ["", "  feature extractors"]
    rows = [
        [
            fmt(fe["feature_extractor_id"]),
            fmt(fe["feature_extractor_name"]),
            fmt(fe["version"]),
            ", ".join(f"{fmt(k)}={_param(v)}" for k, v in sorted((fe.get("params") or {}).items())) or "-",
        ]
        for fe in plan.feature_extractors
    ]
    lines += _table(["ID", "NAME", "VERSION", "PARAMS"], rows, "    ")
    lines += ["", "  vectors"]
    if plan.vectors:
        rows = [
            [
                fmt(v.name),
                str(v.size),
                fmt(v.distance),
                fmt(v.datatype),
                fmt(v.on_disk),
                "max_sim" if v.multivector else "-",
                fmt(v.inference_service),
            ]
            for v in plan.vectors
        ]
        lines += _table(
            ["NAME", "SIZE", "DISTANCE", "DATATYPE", "ON_DISK", "MULTIVECTOR", "INFERENCE SERVICE"], rows, "    "
        )
    else:
        lines.append("    (none: the extractors create no vectors)")
    lines += ["", "  payload indexes"]
    rows = [
        [
            fmt(ix.field_name),
            fmt(ix.type),
            "yes" if ix.is_protected else "no",
            " ".join(f"{k}={fmt(v)}" for k, v in ix.field_schema.items() if k != "type") or "-",
        ]
        for ix in plan.payload_indexes
    ]
    lines += _table(["FIELD", "TYPE", "PROTECTED", "FIELD SCHEMA"], rows, "    ")
    lines += ["", "  vector inference map"]
    if plan.vector_inference_map:
        rows = [[fmt(name), fmt(service)] for name, service in plan.vector_inference_map.items()]
        lines += _table(["VECTOR", "INFERENCE SERVICE"], rows, "    ")
    else:
        lines.append("    (empty)")
    lines += ["", "  infrastructure"]
    infra = plan.infrastructure.to_dict()
    width = max(len(k) for k in infra)
    lines += [f"    {k.ljust(width)}  {fmt(v)}" for k, v in infra.items()]
    if deployment is not None:
        lines += ["", "  stack"] + _settings_lines(deployment, "    ")
    return "\n".join(lines)


def _settings_lines(settings: Mapping[str, Any], indent: str) -> list[str]:
    """Nested settings as aligned `key  value` lines; empty values are left out."""
    shown = {k: v for k, v in settings.items() if v not in (None, [], {})}
    width = max((len(k) for k in shown), default=0)
    lines: list[str] = []
    for key, value in shown.items():
        if isinstance(value, Mapping):
            lines += [f"{indent}{key}"] + _settings_lines(value, indent + "  ")
        elif isinstance(value, list):
            lines.append(f"{indent}{key.ljust(width)}  {', '.join(fmt(v) for v in value)}")
        else:
            lines.append(f"{indent}{key.ljust(width)}  {fmt(value)}")
    return lines
