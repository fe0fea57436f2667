"""A Stripe credit note as the invoice the sync engine books: in e-conomic a credit note is an invoice with
negative lines.

e-conomic has no credit note resource. A credit note is a draft invoice whose lines are negative (by
e-conomic's own practice, each credited line at its price with a negative quantity), booked like any
invoice; its net, VAT and gross are then negative and its PDF uses the credit note template. So a Stripe
credit note (`cn_…`) is read with every line and its original invoice (`fetch_credit_note`) and turned into
a Stripe invoice dict whose every amount is negated (`credit_note_as_invoice`). The engine then finds the
customer and the products of the credited lines, reads the VAT as Stripe charged it, reconciles
e-conomic's totals against the credit note's and books, drafts or holds exactly as it does an invoice.

What the engine reads differently (marked there): the `credit_note` key. Lines are booked with negative
quantities (portal.sync.lines), the heading names the credit note and the invoice it credits, and the
write-back goes to the credit note's metadata. `references.other` is the credit note's number, so a retry
finds what an earlier attempt made for it, never the original invoice's document.
"""

from __future__ import annotations

import copy
import json
from decimal import Decimal

import stripe

from .errors import SyncFailure
from .lines import line_quantity
from .stripe_source import fetch_invoice
from .vat import tax_rates_of

CREDIT_NOTE_ID_PREFIX = "cn_"
REVERSAL_ID_PREFIX = "void_"  # + the invoice's id: the credit note that reverses a voided, booked invoice
LINES_PAGE = 100
REASONS = {"duplicate": "duplicate", "fraudulent": "fraudulent", "order_change": "order change",
           "product_unsatisfactory": "product unsatisfactory"}
# Who the credit note is for, as the credited invoice names them (a credit note carries only the customer id).
INVOICE_FIELDS = (
    "customer", "customer_name", "customer_email", "customer_phone", "customer_address", "customer_shipping",
    "customer_tax_exempt", "customer_tax_ids", "shipping_details", "account_name", "account_country", "footer",
    "custom_fields", "period_start", "period_end", "collection_method", "default_tax_rates",
)


# -- reading ------------------------------------------------------------------------------------------


def fetch_credit_note(client: stripe.StripeClient, credit_note_id: str) -> dict:
    """The credit note as it is now, as plain JSON: every line page read, each tax's TaxRate in place of its
    id, and `invoice` the credited invoice as `fetch_invoice` reads it (customer and tax rates expanded)."""
    data = _get(client, f"/v1/credit_notes/{credit_note_id}")
    lines = data.get("lines") or {}
    if lines.get("has_more"):
        data["lines"] = {**lines, "data": _all_lines(client, credit_note_id), "has_more": False}
    _expand_tax_rates(client, data)
    invoice = data.get("invoice")
    data["invoice"] = fetch_invoice(client, invoice["id"] if isinstance(invoice, dict) else invoice)
    return data


def _get(client: stripe.StripeClient, path: str, **params) -> dict:
    return json.loads(client.raw_request("get", path, **params).body)


def _all_lines(client: stripe.StripeClient, credit_note_id: str) -> list[dict]:
    lines: list[dict] = []
    params: dict = {"limit": LINES_PAGE}
    while True:
        page = _get(client, f"/v1/credit_notes/{credit_note_id}/lines", **params)
        lines.extend(page["data"])
        if not page.get("has_more") or not page["data"]:
            return lines
        params["starting_after"] = page["data"][-1]["id"]


def _expand_tax_rates(client: stripe.StripeClient, credit_note: dict) -> None:
    """Each tax's `tax_rate_details.tax_rate` id replaced by its TaxRate: the lines carry theirs in full
    (`tax_rates`); one named nowhere else is read from Stripe, once."""
    known: dict[str, dict] = {}
    lines = (credit_note.get("lines") or {}).get("data") or []
    for line in lines:
        for rate in line.get("tax_rates") or []:
            if isinstance(rate, dict) and rate.get("id"):
                known[rate["id"]] = rate
    for tax in [*(t for line in lines for t in line.get("taxes") or []), *(credit_note.get("total_taxes") or [])]:
        details = tax.get("tax_rate_details") or {}
        rate_id = details.get("tax_rate")
        if isinstance(rate_id, str):
            if rate_id not in known:
                known[rate_id] = _get(client, f"/v1/tax_rates/{rate_id}")
            details["tax_rate"] = copy.deepcopy(known[rate_id])


# -- the invoice the engine books ---------------------------------------------------------------------


def credit_note_as_invoice(credit_note: dict, invoice: dict | None = None) -> dict:
    """The credit note in the shape of a Stripe invoice, every amount negated, for `SyncEngine.run`.

    `invoice`: the credited invoice (default: the credit note's expanded `invoice`). Each credited line
    keeps the original line's product, price, period and own discounts, so it goes on the same e-conomic
    product with the same VAT; a credit by quantity credits that quantity, a credit by amount 1 × the amount,
    a whole line the line's quantity; a custom line has no product (the merchant's default product) and its
    own description. The customer, addresses, tax status and tax ids are the invoice's; the dates are the
    credit note's, without a due date.
    """
    invoice = invoice if invoice is not None else credit_note.get("invoice")
    if not isinstance(invoice, dict):
        raise SyncFailure(f"The Stripe credit note {credit_note.get('number') or credit_note.get('id')} was read "
                          "without its invoice; it cannot be booked without the lines it credits.")
    credited = credit_note.get("invoice")
    credited_id = credited.get("id") if isinstance(credited, dict) else credited
    if credited_id and credited_id != invoice.get("id"):
        raise SyncFailure(f"The Stripe credit note {credit_note.get('number')} credits invoice {credited_id}, "
                          f"not {invoice.get('id')}.")
    cn = copy.deepcopy(credit_note)
    invoice = copy.deepcopy(invoice)
    currency = cn.get("currency") or invoice["currency"]
    rates = _rates(cn, invoice)
    originals = {line["id"]: line for line in (invoice.get("lines") or {}).get("data") or []}
    lines = [_credited_line(item, originals, cn, currency, rates) for item in (cn.get("lines") or {}).get("data") or []]
    shipping = _negated_shipping(cn.get("shipping_cost"), rates)

    if cn.get("total_taxes") is not None:
        taxes = [_negated_tax(tax, rates) for tax in cn["total_taxes"]]
    else:  # not stated: the lines' taxes and the shipping's add up to it
        taxes = [tax for line in lines for tax in line["taxes"]] + list((shipping or {}).get("taxes") or [])
    total = -int(cn.get("total") or 0)
    if cn.get("total_excluding_tax") is not None:
        net = -int(cn["total_excluding_tax"])
    else:
        net = total - sum(int(tax.get("amount") or 0) for tax in taxes)

    number, invoice_number = cn.get("number"), invoice.get("number")
    heading = f"Credit note {number} for invoice {invoice_number}"
    reason, memo = cn.get("reason"), (cn.get("memo") or "").strip()
    text = heading + (f" ({REASONS.get(reason, str(reason).replace('_', ' '))})" if reason else "") + "."
    if memo:
        text += "\n" + memo
    return {
        "id": cn["id"],
        "object": "invoice",
        # What makes the engine book it as a credit note (portal.sync.engine, portal.sync.lines).
        "credit_note": {"id": cn["id"], "number": number, "invoice": invoice.get("id"), "invoice_number": invoice_number,
                        "heading": heading, "reason": reason, "memo": memo or None},
        "number": number,
        # An issued credit note syncs like a finalized invoice; a voided one like a voided invoice.
        "status": "void" if cn.get("status") == "void" else "open",
        "livemode": cn.get("livemode", invoice.get("livemode")),
        "currency": currency,
        **{name: invoice.get(name) for name in INVOICE_FIELDS},
        "created": cn.get("created"),
        "effective_at": cn.get("effective_at") or cn.get("created"),
        "status_transitions": {"finalized_at": cn.get("created"), "marked_uncollectible_at": None, "paid_at": None,
                               "voided_at": cn.get("voided_at")},
        "due_date": None,
        "description": text,
        "metadata": {**(invoice.get("metadata") or {}), **(cn.get("metadata") or {})},
        "discounts": invoice.get("discounts") or [],
        "total_discount_amounts": _negated(cn.get("discount_amounts")),
        "total_pretax_credit_amounts": _negated(cn.get("pretax_credit_amounts")),
        "lines": {"object": "list", "data": lines, "has_more": False, "total_count": len(lines),
                  "url": f"/v1/credit_notes/{cn['id']}/lines"},
        "subtotal": -int(cn.get("subtotal") or 0),
        "subtotal_excluding_tax": -int(cn["subtotal_excluding_tax"]) if cn.get("subtotal_excluding_tax") is not None else None,
        "total_excluding_tax": net,
        "total_taxes": taxes,
        "total": total,
        "shipping_cost": shipping,
        "amount_shipping": -int(cn.get("amount_shipping") or 0),
    }


def reversal_credit_note(invoice: dict) -> dict:
    """A credit note, in Stripe's shape, for the whole of a voided invoice: Stripe makes none when an invoice is
    voided, but one booked in e-conomic can only be undone by a credit note for everything on it."""
    lines = (invoice.get("lines") or {}).get("data") or []
    voided_at = (invoice.get("status_transitions") or {}).get("voided_at") or invoice.get("created")
    return {
        "id": REVERSAL_ID_PREFIX + invoice["id"], "object": "credit_note", "number": f"{invoice.get('number')}-VOID",
        "invoice": invoice["id"], "currency": invoice.get("currency"), "status": "issued", "reason": None,
        "memo": "The Stripe invoice was voided after it was booked.", "created": voided_at, "effective_at": voided_at,
        "livemode": invoice.get("livemode"), "metadata": {},
        "lines": {"object": "list", "has_more": False, "data": [
            {"id": f"{REVERSAL_ID_PREFIX}{line['id']}", "type": "invoice_line_item", "invoice_line_item": line["id"],
             "amount": line.get("amount") or 0, "quantity": int(line_quantity(line)), "unit_amount_decimal": None,
             "description": line.get("description"), "discount_amounts": line.get("discount_amounts") or [],
             "pretax_credit_amounts": line.get("pretax_credit_amounts") or [], "taxes": line.get("taxes") or [],
             "metadata": {}} for line in lines]},
        "subtotal": invoice.get("subtotal"), "subtotal_excluding_tax": invoice.get("subtotal_excluding_tax"),
        "discount_amounts": invoice.get("total_discount_amounts") or [],
        "pretax_credit_amounts": invoice.get("total_pretax_credit_amounts") or [],
        "total_taxes": invoice.get("total_taxes"), "total_excluding_tax": invoice.get("total_excluding_tax"),
        "total": invoice.get("total"), "shipping_cost": invoice.get("shipping_cost"),
        "amount_shipping": invoice.get("amount_shipping"),
    }


def fetch_reversal(client: stripe.StripeClient, reversal_id: str) -> dict:
    """The reversal of a voided invoice (`void_in_…`), read fresh and in the invoice's shape for the engine."""
    invoice = fetch_invoice(client, reversal_id.removeprefix(REVERSAL_ID_PREFIX))
    return credit_note_as_invoice(reversal_credit_note(invoice), invoice)


def _rates(credit_note: dict, invoice: dict) -> dict[str, dict]:
    """Every TaxRate the credit note and its invoice carry in full, by id."""
    rates = tax_rates_of(invoice)
    for line in (invoice.get("lines") or {}).get("data") or []:
        for tax in line.get("taxes") or []:
            rate = (tax.get("tax_rate_details") or {}).get("tax_rate")
            if isinstance(rate, dict) and rate.get("id"):
                rates[rate["id"]] = rate
    for line in (credit_note.get("lines") or {}).get("data") or []:
        for rate in line.get("tax_rates") or []:
            if isinstance(rate, dict) and rate.get("id"):
                rates[rate["id"]] = rate
    rates.update(tax_rates_of(credit_note))
    return rates


def _negated(items: list[dict] | None) -> list[dict]:
    return [{**item, "amount": -int(item.get("amount") or 0)} for item in items or []]


def _negated_tax(tax: dict, rates: dict[str, dict]) -> dict:
    negated = copy.deepcopy(tax)
    negated["amount"] = -int(tax.get("amount") or 0)
    if tax.get("taxable_amount") is not None:
        negated["taxable_amount"] = -int(tax["taxable_amount"])
    details = negated.get("tax_rate_details") or {}
    if isinstance(details.get("tax_rate"), str) and details["tax_rate"] in rates:
        details["tax_rate"] = copy.deepcopy(rates[details["tax_rate"]])
    return negated


def _negated_shipping(shipping: dict | None, rates: dict[str, dict]) -> dict | None:
    """The shipping the credit note credits (none unless it says so), negated like everything else."""
    if not shipping or not int(shipping.get("amount_total") or 0):
        return None
    negated = copy.deepcopy(shipping)
    for name in ("amount_subtotal", "amount_tax", "amount_total"):
        negated[name] = -int(shipping.get(name) or 0)
    negated["taxes"] = [_negated_tax(tax, rates) for tax in shipping.get("taxes") or []]
    return negated


def _credited_quantity(item: dict, original: dict) -> Decimal:
    """The quantity credited: the whole line's (Stripe's `quantity` on a credit note line is an integer, the
    invoice line's may have decimals), the quantity credited, or 1 for a credit by amount."""
    if int(item.get("amount") or 0) == int(original.get("amount") or 0):
        return line_quantity(original)
    if item.get("unit_amount_decimal") is not None:  # credited by quantity, at the line's unit price
        return Decimal(int(item.get("quantity") or 1))
    return Decimal(1)


def _credited_line(item: dict, originals: dict[str, dict], credit_note: dict, currency: str,
                   rates: dict[str, dict]) -> dict:
    """One credit note line as an invoice line with a negative amount, discounts and taxes."""
    original = None
    if item.get("type") != "custom_line_item":
        original = originals.get(item.get("invoice_line_item"))
        if original is None:
            raise SyncFailure(f"The Stripe credit note {credit_note.get('number')} credits invoice line "
                              f"{item.get('invoice_line_item')}, which its invoice does not list.")
    line = {
        "id": item["id"],
        "object": "line_item",
        "amount": -int(item.get("amount") or 0),
        "currency": currency,
        "description": item.get("description") or (original or {}).get("description") or "",
        "discount_amounts": _negated(item.get("discount_amounts")),
        "pretax_credit_amounts": _negated(item.get("pretax_credit_amounts")),
        "taxes": [_negated_tax(tax, rates) for tax in item.get("taxes") or []],
        "metadata": item.get("metadata") or {},
        "invoice_line_item": item.get("invoice_line_item"),
    }
    if original is None:  # a custom line: no product (the merchant's default product), its own description
        quantity = Decimal(int(item.get("quantity") or 1))
        line.update(discountable=False, discounts=[], parent=None, period=None, pricing=None)
    else:  # the original line's product, price, period and own discounts: the same product and VAT
        quantity = _credited_quantity(item, original)
        line.update({name: copy.deepcopy(original.get(name)) for name in ("discountable", "parent", "period", "pricing")})
        line["discounts"] = list(original.get("discounts") or [])
    line.update(quantity=int(quantity), quantity_decimal=str(quantity))
    return line
