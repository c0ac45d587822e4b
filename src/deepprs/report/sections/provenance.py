"""Provenance: every ``*.provenance.json`` (command, argv, version, time, memory, outputs) and the logs."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pandas as pd

from deepprs.report.base import ReportContext, Section, register_section
from deepprs.report.html import callout, esc, fmt_value, mapping_table, table_html

MAX_LOG_CHARACTERS = 20_000


def provenance_rows(files: list[Path], context: ReportContext) -> pd.DataFrame:
    """One row per provenance record: run, command, version, elapsed, peak memory, outputs."""
    rows = []
    for path in files:
        record = json.loads(path.read_text())
        rows.append(
            {
                "run": context.rel(path).removesuffix(".provenance.json"),
                "command": record.get("command", ""),
                "version": record.get("version", ""),
                "elapsed (s)": record.get("elapsed_seconds", record.get("elapsed")),
                "peak memory (MiB)": record.get("peak_memory_mib", record.get("peak_memory")),
                "outputs": len(record.get("outputs", []) or []),
                "time": record.get("time", ""),
            }
        )
    return pd.DataFrame(rows)


def _log_tail(path: Path) -> str:
    text = path.read_text(errors="replace")
    if len(text) > MAX_LOG_CHARACTERS:
        text = f"[... {len(text) - MAX_LOG_CHARACTERS} characters omitted ...]\n" + text[-MAX_LOG_CHARACTERS:]
    return text


@register_section
class ProvenanceSection(Section):
    """What produced every file: commands, versions, timings, memory, outputs, and the run logs."""

    id = "provenance"
    title = "Provenance"
    order = 90
    patterns = ("*.provenance.json", "*.log")

    def render(self, files: list[Path], context: ReportContext) -> str:
        records = [p for p in files if p.name.endswith(".provenance.json")]
        logs = [p for p in files if p.suffix == ".log"]
        parts = []
        readable = []
        for path in records:
            try:
                json.loads(path.read_text())
                readable.append(path)
            except json.JSONDecodeError as exc:
                parts.append(callout(f"{context.rel(path)}: not valid JSON ({exc})"))
        if readable:
            parts.append(table_html(provenance_rows(readable, context), element_id="table-provenance"))
        for path in readable:
            record = json.loads(path.read_text())
            argv = record.get("argv") or []
            details = {
                "command line": shlex.join(str(a) for a in argv) if isinstance(argv, list) else str(argv),
                "software": f"{record.get('software', '')} {record.get('version', '')}".strip(),
                "python / platform": f"{record.get('python', '')} / {record.get('platform', '')}",
                "outputs": ", ".join(context.rel(Path(o)) for o in record.get("outputs", []) or []),
            }
            if record.get("steps"):
                details["steps"] = "; ".join(
                    f"{s.get('step')}: {fmt_value(s.get('seconds'))} s"
                    for s in record["steps"]
                    if isinstance(s, dict)
                )
            body = mapping_table(details)
            if record.get("parameters"):
                body += mapping_table(
                    {
                        k: json.dumps(v) if isinstance(v, (dict, list)) else v
                        for k, v in record["parameters"].items()
                    },
                    caption="parameters",
                    key_header="parameter",
                )
            parts.append(f"<details><summary>{esc(context.rel(path))}</summary>{body}</details>")
        if logs:
            parts.append("<h3>Logs</h3>")
            for path in logs:
                parts.append(
                    f'<details><summary><a href="{esc(context.href(path))}">{esc(context.rel(path))}</a>'
                    f"</summary><pre>{esc(_log_tail(path))}</pre></details>"
                )
        return "".join(parts)
