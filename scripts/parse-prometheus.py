#!/usr/bin/env python3
"""Parses a Prometheus text-exposition file with prometheus_client's parser
and prints its families as JSON: {name: {"type", "help", "samples": [{"name",
"labels", "value"}]}}. Exits 1 with the parser's message when the file is invalid."""
import json
import sys

from prometheus_client.parser import text_string_to_metric_families

try:
    with open(sys.argv[1], encoding="utf-8") as handle:
        families = list(text_string_to_metric_families(handle.read()))
except Exception as error:  # the parser raises ValueError and friends
    print(f"invalid exposition: {error}", file=sys.stderr)
    sys.exit(1)
print(json.dumps({
    family.name: {
        "type": family.type,
        "help": family.documentation,
        "samples": [{"name": s.name, "labels": s.labels, "value": s.value} for s in family.samples],
    }
    for family in families
}))
