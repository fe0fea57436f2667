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
    """The engine's reports, kept as the run's column names (as the database recorder stores them)."""

    fields: dict = field(default_factory=dict)
    steps: list = field(default_factory=list)

    def invoice_fetched(self, number, customer_name, customer_email, currency, total_minor):
        self.fields.update(stripe_invoice_number=number, customer_name=customer_name, customer_email=customer_email,
                           currency=currency, total_minor=total_minor)

    def customer_known(self, number):
        self.fields["economic_customer_number"] = number

    def document_create_started(self):
        self.fields["document_create_started"] = True

    def draft_known(self, document_type, number):
        self.fields["economic_order_number" if document_type == "draft_order" else "economic_draft_number"] = number

    def invoice_booked(self, number):
        self.fields["economic_booked_number"] = number

    def held_draft_discarded(self):
        self.fields["discard_draft_number"] = None

    def credit_note_due(self):
        self.fields["needs_credit_note"] = True

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
