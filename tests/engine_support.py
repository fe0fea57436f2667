"""In-memory recorder and link store for driving the sync engine without Flask, plus schema checks."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import jsonschema

SCHEMAS = Path(__file__).resolve().parents[1] / "doubles" / "schemas"


def assert_valid_for_economic(schema_file: str, body: dict) -> None:
    """Validate against e-conomic's published draft-03 schema, plus its own rules the validator skips:
    no nulls, `maxDecimal`, and `full-date`."""
    schema = json.loads((SCHEMAS / schema_file).read_text())
    jsonschema.Draft3Validator(schema).validate(body)

    def walk(value, rule, path):
        assert value is not None, f"explicit null at {path}"
        if isinstance(value, dict):
            for key, item in value.items():
                walk(item, (rule.get("properties") or {}).get(key, {}), f"{path}.{key}")
        elif isinstance(value, list):
            for index, item in enumerate(value):
                walk(item, rule.get("items") or {}, f"{path}[{index}]")
        else:
            if "maxDecimal" in rule and isinstance(value, (int, float)):
                decimals = -Decimal(str(value)).as_tuple().exponent
                assert decimals <= rule["maxDecimal"], f"{path} has {decimals} decimals"
            if rule.get("format") == "full-date":
                assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", value), f"{path} is not a full date"

    walk(body, schema, "$")


@dataclass
class MemoryRecorder:
    fields: dict = field(default_factory=dict)
    steps: list = field(default_factory=list)

    def progress(self, **fields):
        self.fields.update(fields)

    def step(self, step, outcome, *, numbers=None, summary=None, error=None, duration_ms=0):
        self.steps.append({"step": step, "outcome": outcome, "numbers": numbers, "summary": summary, "error": error})

    def outcomes(self):
        return [(s["step"], s["outcome"]) for s in self.steps]


@dataclass
class MemoryLinks:
    customers: dict = field(default_factory=dict)
    products: dict = field(default_factory=dict)

    def customer_number(self, stripe_customer_id):
        return self.customers.get(stripe_customer_id)

    def remember_customer(self, stripe_customer_id, number):
        self.customers[stripe_customer_id] = number

    def product_number(self, stripe_product_id):
        return self.products.get(stripe_product_id)

    def remember_product(self, stripe_product_id, number):
        self.products[stripe_product_id] = number
