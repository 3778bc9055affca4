"""Writes docs/records.md: each record the product writes or serves (facemask.inference.records), its fields
and its JSON schema. ``--check`` fails where the file is not what this would write (CI runs it as a test).

    python scripts/records_schema.py          # rewrite docs/records.md
    python scripts/records_schema.py --check  # exit 1 if it is out of date
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from facemask.inference.records import RECORDS

DOC = Path(__file__).resolve().parents[1] / "docs" / "records.md"
USED_BY = {
    "FaceRecord": "`detect --log` (each frame's `faces`), `/api/predict` and `/api/live` (`faces`)",
    "PersonRecord": "a face's `person` at a camera",
    "EventRecord": "`detect --events`, `serve --events`, the webhook's POST body, `/api/live` and `/api/events`",
    "FrameRecord": "one line of `detect --log`",
    "Prediction": "`facemask predict --format json` (a list of them)",
}


def field_type(spec: dict) -> str:
    if "anyOf" in spec:
        return " or ".join(field_type(option) for option in spec["anyOf"])
    if "$ref" in spec:
        return spec["$ref"].rsplit("/", 1)[1]
    if spec.get("type") == "array":
        return f"list of {field_type(spec['items'])}"
    if "const" in spec:
        return json.dumps(spec["const"])
    return spec.get("format", spec.get("type", "any"))


def markdown() -> str:
    lines = [
        "# Records",
        "",
        "What facemask writes and serves, defined once (`src/facemask/inference/records.py`, pydantic) and used",
        "alike by the JSON-lines logs, the HTTP API, the webhook, `predict --format json` and the page. Written by",
        "`python scripts/records_schema.py`; a test fails when this file is out of date, and another validates",
        "real output of each against these schemas.",
    ]
    for record in RECORDS:
        schema = record.model_json_schema()
        lines += ["", f"## {record.__name__}", "", " ".join(record.__doc__.split()), ""]
        lines += [f"Used by {USED_BY[record.__name__]}.", "", "| field | type | meaning |", "|---|---|---|"]
        for name, spec in schema["properties"].items():
            required = "" if name in schema.get("required", []) else " (optional)"
            lines.append(f"| `{name}` | {field_type(spec)}{required} | {spec.get('description', '')} |")
        lines += ["", "```json", json.dumps(schema, indent=1), "```"]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if docs/records.md is out of date")
    text = markdown()
    if parser.parse_args().check:
        if not DOC.exists() or DOC.read_text() != text:
            print(f"{DOC} is out of date: run python scripts/records_schema.py", file=sys.stderr)
            return 1
        return 0
    DOC.write_text(text)
    print(f"wrote {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
