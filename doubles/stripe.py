"""A fake of the Stripe API for the official `stripe` SDK, and signed webhook deliveries.

    with FakeStripe() as fake:
        invoice = fake.add_invoice(make_invoice(number="DEMO-0001"))
        client = stripe.StripeClient("sk_test_fake", base_addresses={"api": fake.url})
        deliver(portal_webhook_url, "invoice.paid", invoice, "whsec_…")

Objects are shaped like Stripe API 2026-10-28.endive (examples in doubles/data/). A retrieved invoice
embeds its first 10 lines, like Stripe; the rest are paged at /v1/invoices/{id}/lines.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import secrets
import threading
import time
from pathlib import Path
from typing import Any

import requests
from werkzeug.wrappers import Request, Response

from .server import ServedDouble

DATA = Path(__file__).parent / "data"
API_VERSION = "2026-10-28.endive"


def example(name: str) -> dict:
    return json.loads((DATA / f"{name}.json").read_text())


def _form_to_nested(form) -> dict:
    """Stripe's form encoding (metadata[key]=value) to a dict."""
    result: dict[str, Any] = {}
    for key, value in form.items(multi=False):
        if "[" in key:
            head, rest = key.split("[", 1)
            result.setdefault(head, {})[rest.rstrip("]")] = value
        else:
            result[key] = value
    return result


class FakeStripe(ServedDouble):
    def __init__(self, api_key: str = "sk_test_fake") -> None:
        self.api_key = api_key
        self.lock = threading.RLock()
        self.invoices: dict[str, dict] = {}
        self.lines: dict[str, list[dict]] = {}
        self.customers: dict[str, dict] = {}
        self.products: dict[str, dict] = {}
        tax_rate = example("tax_rate")
        self.tax_rates: dict[str, dict] = {tax_rate["id"]: tax_rate}
        self.requests: list[dict] = []
        self.serve(self.wsgi)

    # -- seeding ----------------------------------------------------------------------------------------

    def add_customer(self, customer: dict) -> dict:
        with self.lock:
            self.customers[customer["id"]] = copy.deepcopy(customer)
        return customer

    def add_product(self, product: dict) -> dict:
        with self.lock:
            self.products[product["id"]] = copy.deepcopy(product)
        return product

    def add_tax_rate(self, tax_rate: dict) -> dict:
        with self.lock:
            self.tax_rates[tax_rate["id"]] = copy.deepcopy(tax_rate)
        return tax_rate

    def add_invoice(self, invoice: dict, customer: dict | None = None, products: list[dict] = ()) -> dict:
        """Store an invoice (and its customer and products); its lines may be any number."""
        with self.lock:
            invoice = copy.deepcopy(invoice)
            self.lines[invoice["id"]] = invoice["lines"]["data"]
            if customer:
                self.add_customer(customer)
            for product in products:
                self.add_product(product)
            self.invoices[invoice["id"]] = invoice
        return invoice

    # -- HTTP -------------------------------------------------------------------------------------------

    def wsgi(self, environ, start_response):
        return self.handle(Request(environ))(environ, start_response)

    @staticmethod
    def _json(value, status: int = 200) -> Response:
        return Response(json.dumps(value), status=status, mimetype="application/json")

    def _missing(self, kind: str, object_id: str) -> Response:
        return self._json({"error": {"code": "resource_missing", "message": f"No such {kind}: '{object_id}'",
                                     "param": "id", "type": "invalid_request_error"}}, 404)

    def _invoice_view(self, invoice: dict, expand: list[str]) -> dict:
        view = copy.deepcopy(invoice)
        lines = self.lines[invoice["id"]]
        view["lines"] = {"object": "list", "data": copy.deepcopy(lines[:10]), "has_more": len(lines) > 10,
                         "total_count": len(lines), "url": f"/v1/invoices/{invoice['id']}/lines"}
        if "customer" in expand and view.get("customer") in self.customers:
            view["customer"] = copy.deepcopy(self.customers[view["customer"]])
        if "total_taxes.tax_rate_details.tax_rate" in expand:
            for tax in view.get("total_taxes") or []:
                details = tax.get("tax_rate_details") or {}
                if isinstance(details.get("tax_rate"), str) and details["tax_rate"] in self.tax_rates:
                    details["tax_rate"] = copy.deepcopy(self.tax_rates[details["tax_rate"]])
        return view

    def handle(self, request: Request) -> Response:
        with self.lock:
            self.requests.append({"method": request.method, "path": request.path, "query": dict(request.args)})
        if request.headers.get("Authorization") != f"Bearer {self.api_key}" and not request.path.startswith("/_demo/"):
            return self._json({"error": {"message": "Invalid API Key provided: sk_test_****", "type": "invalid_request_error"}}, 401)
        parts = request.path.strip("/").split("/")
        if parts == ["_demo", "send-invoice"] and request.method == "POST":
            return self._demo_send(request.get_json(force=True))
        expand = [value for key, value in request.args.items(multi=True) if key.startswith("expand")]
        with self.lock:
            if parts[:2] == ["v1", "invoices"] and len(parts) == 2 and request.method == "GET":
                return self._list_invoices(request)
            if parts[:2] == ["v1", "invoices"] and len(parts) >= 3:
                invoice = self.invoices.get(parts[2])
                if invoice is None:
                    return self._missing("invoice", parts[2])
                if len(parts) == 4 and parts[3] == "lines":
                    return self._page(self.lines[parts[2]], request, f"/v1/invoices/{parts[2]}/lines")
                if request.method == "POST":
                    changes = _form_to_nested(request.form)
                    if "metadata" in changes:
                        invoice["metadata"] = {**(invoice.get("metadata") or {}), **changes["metadata"]}
                return self._json(self._invoice_view(invoice, expand))
            if parts[:2] == ["v1", "customers"] and len(parts) == 3:
                customer = self.customers.get(parts[2])
                return self._json(customer) if customer else self._missing("customer", parts[2])
            if parts[:2] == ["v1", "tax_rates"] and len(parts) == 2:
                return self._page(sorted(self.tax_rates.values(), key=lambda r: r["id"]), request, "/v1/tax_rates")
            if parts[:2] == ["v1", "tax_rates"] and len(parts) == 3:
                rate = self.tax_rates.get(parts[2])
                return self._json(rate) if rate else self._missing("tax_rate", parts[2])
            if parts[:2] == ["v1", "products"] and len(parts) == 3:
                product = self.products.get(parts[2])
                return self._json(product) if product else self._missing("product", parts[2])
        return self._json({"error": {"message": f"Unrecognized request URL ({request.method}: {request.path}).", "type": "invalid_request_error"}}, 404)

    def _demo_send(self, order: dict) -> Response:
        """The demo's "Send a test invoice": make a realistic invoice and deliver its signed event."""
        import random

        catalogue = [("Consulting hour", "7.5", 95000), ("Onboarding workshop", "1", 149500),
                     ("Support plan (month)", "1", 49900), ("Design review", "2.25", 110000)]
        lines = random.sample(catalogue, k=random.randint(1, 3))
        number = f"DEMO-{len(self.invoices) + 1:04d}"
        status = "paid" if order["event"] == "invoice.paid" else "open"
        exempt = order.get("variant") == "exempt"  # a customer exempt from VAT: held until its VAT is mapped
        invoice, customer, products = make_invoice(number=number, lines=lines, status=status, vat_percent=0 if exempt else 25)
        if exempt:
            invoice["customer_tax_exempt"] = "exempt"
        self.add_invoice(invoice, customer, products)
        try:
            answer = deliver(order["webhook_url"], order["event"], self.invoices[invoice["id"]], order["secret"])
            delivered = {"status": answer.status_code, "body": answer.text[:500]}
        except requests.RequestException as error:
            delivered = {"status": None, "body": str(error)}
        return self._json({"invoice": invoice["id"], "number": number, "delivery": delivered})

    def _page(self, items: list[dict], request: Request, url: str) -> Response:
        limit = min(int(request.args.get("limit", 10)), 100)
        after = request.args.get("starting_after")
        start = 0
        if after:
            ids = [item["id"] for item in items]
            start = ids.index(after) + 1 if after in ids else len(items)
        page = items[start:start + limit]
        return self._json({"object": "list", "data": copy.deepcopy(page), "has_more": start + limit < len(items), "url": url})

    def _list_invoices(self, request: Request) -> Response:
        gte = request.args.get("created[gte]", type=int)
        lt = request.args.get("created[lt]", type=int)
        items = sorted(self.invoices.values(), key=lambda i: (-i["created"], i["id"]))
        items = [i for i in items if (gte is None or i["created"] >= gte) and (lt is None or i["created"] < lt)]
        return self._page([self._invoice_view(i, []) for i in items], request, "/v1/invoices")


# -- building realistic invoices --------------------------------------------------------------------------


def make_invoice(number: str = "DEMO-0001", lines: list[tuple[str, str, int]] | None = None, *, status: str = "paid",
                 customer: dict | None = None, collection_method: str = "send_invoice", vat_percent: int = 25,
                 created: int | None = None, invoice_id: str | None = None) -> tuple[dict, dict, list[dict]]:
    """A consistent DKK invoice with exclusive VAT: (invoice, customer, products).

    `lines` are (product name, quantity as a decimal string, unit amount in øre).
    """
    lines = lines or [("Consulting hour", "7.5", 95000), ("Onboarding", "1", 149500)]
    base = example("invoice_send_invoice_open")
    customer = customer or example("customer")
    created = created or int(time.time())
    invoice_id = invoice_id or "in_" + secrets.token_hex(12)
    products, line_items, subtotal, tax_total = [], [], 0, 0
    tax_rate = base["total_taxes"][0]["tax_rate_details"]["tax_rate"] if base.get("total_taxes") else "txr_fake"
    for index, (name, quantity, unit) in enumerate(lines):
        product_id = "prod_" + hashlib.sha1(name.encode()).hexdigest()[:14]
        products.append({**example("product"), "id": product_id, "name": name, "metadata": {}})
        amount = int((__import__("decimal").Decimal(quantity) * unit).to_integral_value())
        tax = amount * vat_percent // 100
        subtotal, tax_total = subtotal + amount, tax_total + tax
        line_items.append({
            "id": f"il_{invoice_id[3:]}{index:03d}", "object": "line_item", "amount": amount, "currency": "dkk",
            "description": f"{quantity} × {name}", "discount_amounts": [], "discountable": True, "discounts": [],
            "invoice": invoice_id, "livemode": False, "metadata": {}, "parent": None,
            "period": {"end": created, "start": created}, "pretax_credit_amounts": [],
            "pricing": {"type": "price_details", "price_details": {"price": f"price_{product_id[5:]}", "product": product_id},
                        "unit_amount_decimal": str(unit)},
            "quantity": int(__import__("decimal").Decimal(quantity)), "quantity_decimal": quantity, "subtotal": amount,
            "taxes": [{"amount": tax, "tax_behavior": "exclusive", "tax_rate_details": {"tax_rate": tax_rate},
                       "taxability_reason": "standard_rated", "taxable_amount": amount, "type": "tax_rate_details"}],
        })
    invoice = {
        **base, "id": invoice_id, "number": number, "customer": customer["id"], "customer_name": customer.get("name"),
        "customer_email": customer.get("email"), "created": created, "effective_at": created,
        "status": status, "collection_method": collection_method,
        "due_date": created + 14 * 86400 if collection_method == "send_invoice" else None,
        "status_transitions": {"finalized_at": created, "marked_uncollectible_at": None,
                               "paid_at": created if status == "paid" else None, "voided_at": None},
        "lines": {"object": "list", "data": line_items, "has_more": False, "url": f"/v1/invoices/{invoice_id}/lines"},
        "subtotal": subtotal, "subtotal_excluding_tax": subtotal, "total_excluding_tax": subtotal,
        "total_taxes": [{"amount": tax_total, "tax_behavior": "exclusive", "tax_rate_details": {"tax_rate": tax_rate},
                         "taxability_reason": "standard_rated", "taxable_amount": subtotal, "type": "tax_rate_details"}],
        "total": subtotal + tax_total, "amount_due": subtotal + tax_total,
        "amount_paid": subtotal + tax_total if status == "paid" else 0,
        "amount_remaining": 0 if status == "paid" else subtotal + tax_total,
        "total_discount_amounts": [], "discounts": [], "metadata": {},
    }
    return invoice, customer, products


def signed_event(event_type: str, invoice: dict, secret: str, event_id: str | None = None,
                 timestamp: int | None = None) -> tuple[bytes, str]:
    """A Stripe event envelope carrying `invoice`, and its `Stripe-Signature` header."""
    event = {
        "id": event_id or "evt_" + secrets.token_hex(12), "object": "event", "api_version": API_VERSION,
        "created": int(time.time()), "data": {"object": invoice}, "livemode": False, "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None}, "type": event_type,
    }
    payload = json.dumps(event).encode()
    timestamp = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256).hexdigest()
    return payload, f"t={timestamp},v1={digest}"


def deliver(url: str, event_type: str, invoice: dict, secret: str, event_id: str | None = None, timeout: float = 10) -> requests.Response:
    """POST a correctly signed event to a portal's webhook URL, as Stripe does."""
    payload, signature = signed_event(event_type, invoice, secret, event_id)
    return requests.post(url, data=payload, timeout=timeout,
                         headers={"Stripe-Signature": signature, "Content-Type": "application/json; charset=utf-8"})
