"""A fake of e-conomic's REST API (https://restapi.e-conomic.com) for tests, the demo and benchmarks.

    with FakeEconomic() as fake:          # fake.url == "http://127.0.0.1:<port>"
        fake.fail_next(1, status=500)     # faults, switchable at run time from any thread
        ...
        fake.documents("invoices/booked") # what was created

Every POST body is validated against e-conomic's published draft-03 JSON schemas (plus e-conomic's
own rules the validator does not know: no nulls, `maxDecimal`, `full-date`); errors come back in
e-conomic's error shape. `Idempotency-Key` replays the first answer. Numbers are assigned the way
e-conomic does (customers, draft and booked invoices, orders).
"""

from __future__ import annotations

import json
import random
import re
import socket
import threading
import time
import uuid
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import jsonschema
from werkzeug.wrappers import Request, Response

from .server import ServedDouble

SCHEMAS = Path(__file__).parent / "schemas"
CENT = Decimal("0.01")
VAT_RATES = {1: Decimal("0.25"), 2: Decimal("0"), 3: Decimal("0"), 4: Decimal("0.25")}


def _money(value: Decimal) -> float:
    return float(value.quantize(CENT, rounding=ROUND_HALF_UP))


def schema_problems(schema_name: str, body: Any) -> list[str]:
    """Every way `body` breaks e-conomic's schema and rules, as "path: message" strings."""
    schema = json.loads((SCHEMAS / schema_name).read_text())
    problems = [f"{'.'.join(str(p) for p in error.path) or '(body)'}: {error.message}"
                for error in jsonschema.Draft3Validator(schema).iter_errors(body)]

    def walk(value, rule, path):
        if value is None:
            problems.append(f"{path}: null is not allowed")
        elif isinstance(value, dict):
            for key, item in value.items():
                walk(item, (rule.get("properties") or {}).get(key, {}), f"{path}.{key}" if path else key)
        elif isinstance(value, list):
            for index, item in enumerate(value):
                walk(item, rule.get("items") or {}, f"{path}[{index}]")
        else:
            if "maxDecimal" in rule and isinstance(value, (int, float)) and not isinstance(value, bool):
                if -Decimal(str(value)).normalize().as_tuple().exponent > rule["maxDecimal"]:
                    problems.append(f"{path}: at most {rule['maxDecimal']} decimals")
            if rule.get("format") == "full-date" and not re.fullmatch(r"\d{4}-\d{2}-\d{2}", str(value)):
                problems.append(f"{path}: not a full date (YYYY-MM-DD)")

    walk(body, schema, "")
    return problems


class FakeEconomic(ServedDouble):
    def __init__(self, app_secret_token: str = "app", agreement_grant_token: str = "grant", seed: int = 7) -> None:
        self.app_secret_token = app_secret_token
        self.agreement_grant_token = agreement_grant_token
        self.lock = threading.RLock()
        self.random = random.Random(seed)
        self.requests: list[dict] = []
        self.latency = 0.0
        self.wait_and_drop = False  # drop the connection after the next document is created, once
        self.delay_after_create = 0.0  # seconds between making a document (invoice, order) and answering
        self.pause_after: dict[str, float] = {}  # path ("customers", "invoices/booked", …) → seconds to sit on the answer
        self.fail_ratio = 0.0
        self._faults: list[tuple[str, dict]] = []
        self._idempotent: dict[tuple[str, str], tuple[int, str]] = {}
        self.store: dict[str, dict[Any, dict]] = {
            "customers": {}, "products": {}, "invoices/drafts": {}, "invoices/booked": {}, "orders/drafts": {},
        }
        self.numbers = {"customers": 1000, "invoices/drafts": 0, "invoices/booked": 20000, "orders/drafts": 0}
        self.lists = {
            "customer-groups": [{"customerGroupNumber": 1, "name": "Domestic customers"}, {"customerGroupNumber": 2, "name": "Foreign customers"}],
            "payment-terms": [{"paymentTermsNumber": 1, "name": "Net 14 days", "daysOfCredit": 14, "paymentTermsType": "net"}],
            "vat-zones": [{"vatZoneNumber": n, "name": name, "enabledForCustomer": True, "enabledForSupplier": True}
                          for n, name in ((1, "Domestic"), (2, "EU"), (3, "Abroad"), (4, "Domestic (exempt)"))],
            "layouts": [{"layoutNumber": 19, "name": "Standard invoice layout"}],
            "currencies": [{"code": c, "name": n, "isoNumber": i} for c, n, i in (("DKK", "Danish krone", "208"), ("EUR", "Euro", "978"), ("USD", "US dollar", "840"))],
            "product-groups": [{"productGroupNumber": 1, "name": "Services"}, {"productGroupNumber": 2, "name": "Goods"}],
            "units": [{"unitNumber": 1, "name": "pcs."}],
        }
        self.serve(self.wsgi)

    # -- faults -----------------------------------------------------------------------------------------

    def fail_next(self, count: int = 1, status: int = 500, retry_after: float | None = None) -> None:
        """The next `count` requests answer `status` (429 with Retry-After when given)."""
        with self.lock:
            self._faults += [("status", {"status": status, "retry_after": retry_after})] * count

    def timeout_next(self, count: int = 1, seconds: float = 30.0) -> None:
        with self.lock:
            self._faults += [("sleep", {"seconds": seconds})] * count

    def drop_after_create_next(self, count: int = 1) -> None:
        """The next `count` creates (POSTs) are carried out, then the connection is dropped unanswered."""
        with self.lock:
            self._faults += [("drop_after", {})] * count

    # -- inspection -------------------------------------------------------------------------------------

    def documents(self, kind: str) -> list[dict]:
        with self.lock:
            return list(self.store[kind].values())

    def posts(self, path: str) -> list[dict]:
        return [r for r in self.requests if r["method"] == "POST" and r["path"] == path]

    # -- seeding ----------------------------------------------------------------------------------------

    def add_customer(self, number: int, **fields) -> dict:
        with self.lock:
            customer = {"customerNumber": number, "currency": "DKK", "name": f"Customer {number}", **fields}
            self.store["customers"][number] = customer
            return customer

    def add_product(self, number: str, name: str, **fields) -> dict:
        with self.lock:
            product = {"productNumber": number, "name": name, "productGroup": {"productGroupNumber": 1}, **fields}
            self.store["products"][number] = product
            return product

    # -- the HTTP side ----------------------------------------------------------------------------------

    def wsgi(self, environ, start_response):
        request = Request(environ)
        response = self.handle(request, environ)
        return response(environ, start_response)

    def _error(self, status: int, message: str, errors: dict | None = None, **headers) -> Response:
        body = {"message": message, "errorCode": f"E{status:03d}00", "developerHint": message,
                "logId": uuid.uuid4().hex[:16], "httpStatusCode": status, "logTime": time.strftime("%Y-%m-%dT%H:%M:%S")}
        if errors:
            body["errors"] = errors
        response = Response(json.dumps(body), status=status, mimetype="application/json")
        for name, value in headers.items():
            response.headers[name.replace("_", "-")] = str(value)
        return response

    def _json(self, value, status: int = 200) -> Response:
        response = Response(json.dumps(value), status=status, mimetype="application/json")
        response.headers["X-RateLimiting"] = "limit=unknown"
        return response

    def handle(self, request: Request, environ) -> Response:
        body = None
        if request.method in ("POST", "PUT"):
            try:
                body = json.loads(request.get_data() or b"null")
            except ValueError:
                return self._error(400, "The body is not valid JSON.")
        with self.lock:
            self.requests.append({"method": request.method, "path": request.path, "query": dict(request.args),
                                  "headers": dict(request.headers), "json": body})
            fault = self._faults.pop(0) if self._faults else None
            path = request.path.strip("/")
            if fault is None and self.wait_and_drop and request.method == "POST" and path in ("invoices/drafts", "invoices/booked", "orders/drafts"):
                self.wait_and_drop = False
                fault = ("drop_after", {})
            if fault is None and self.fail_ratio and self.random.random() < self.fail_ratio:
                fault = self.random.choice([("status", {"status": 500, "retry_after": None}),
                                            ("status", {"status": 429, "retry_after": 1}), ("drop_after", {})])
        if self.latency:
            time.sleep(self.latency)
        if (request.headers.get("X-AppSecretToken") != self.app_secret_token
                or request.headers.get("X-AgreementGrantToken") != self.agreement_grant_token):
            return self._error(401, "The app secret token or the agreement grant token is not valid.")
        if fault and fault[0] == "status":
            extra = {"Retry_After": fault[1]["retry_after"]} if fault[1]["retry_after"] is not None else {}
            return self._error(fault[1]["status"], "Simulated failure.", **extra)
        if fault and fault[0] == "sleep":
            time.sleep(fault[1]["seconds"])
        response = self.route(request, body)
        created_path = request.path.strip("/") if request.method == "POST" and response.status_code == 201 else None
        if created_path in ("invoices/drafts", "invoices/booked", "orders/drafts") and self.delay_after_create:
            time.sleep(self.delay_after_create)
        if created_path in self.pause_after:
            time.sleep(self.pause_after[created_path])
        if fault and fault[0] == "drop_after" and request.method == "POST":
            sock = environ.get("werkzeug.socket")
            if sock is not None:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            return Response(b"", status=500)
        return response

    def route(self, request: Request, body) -> Response:
        path = request.path.strip("/")
        method = request.method
        if path == "self" and method == "GET":
            return self._json({"agreementNumber": 123456, "company": {"name": "Fake ApS"}, "self": f"{self.url}/self"})
        if path in self.lists and method == "GET":
            return self._collection(request, self.lists[path])
        for kind in ("invoices/drafts", "invoices/booked", "orders/drafts", "customers", "products"):
            if path == kind:
                if method == "GET":
                    return self._collection(request, self.documents(kind))
                if method == "POST":
                    return self._create(kind, request, body)
            if path.startswith(kind + "/") and method == "GET":
                key = path[len(kind) + 1:]
                with self.lock:
                    item = self.store[kind].get(int(key) if key.isdigit() and kind != "products" else key)
                return self._json(item) if item else self._error(404, f"No {kind} {key}.")
        return self._error(404, f"{method} /{path} is not served by the fake.")

    def _collection(self, request: Request, items: list[dict]) -> Response:
        wanted = request.args.get("filter")
        if wanted:
            items = [item for item in items if all(self._matches(item, clause) for clause in wanted.split("$and:"))]
        pagesize = min(int(request.args.get("pagesize", 20)), 1000)
        skip = int(request.args.get("skippages", 0))
        page = items[skip * pagesize:(skip + 1) * pagesize]
        return self._json({"collection": page, "pagination": {
            "skipPages": skip, "pageSize": pagesize, "maxPageSizeAllowed": 1000, "results": len(items),
            "resultsWithoutFilter": len(items), "firstPage": request.base_url, "lastPage": request.base_url,
        }, "self": request.url})

    @staticmethod
    def _matches(item: dict, clause: str) -> bool:
        field, _, value = clause.partition("$eq:")
        value = re.sub(r"\$(.)", r"\1", value)  # unescape e-conomic's $-escapes
        current: Any = item
        for part in field.split("."):
            current = current.get(part) if isinstance(current, dict) else None
        return str(current) == value

    def _create(self, kind: str, request: Request, body) -> Response:
        key = request.headers.get("Idempotency-Key")
        with self.lock:
            if key and (kind, key) in self._idempotent:
                status, text = self._idempotent[(kind, key)]
                response = Response(text, status=status, mimetype="application/json")
                response.headers["X-ResultFromCache"] = "true"
                return response
            schema = {"invoices/drafts": "invoices.drafts.post.schema.json", "invoices/booked": "invoices.booked.post.schema.json",
                      "orders/drafts": "orders.drafts.post.schema.json", "customers": "customers.post.schema.json",
                      "products": "products.post.schema.json"}[kind]
            problems = schema_problems(schema, body)
            if problems:
                return self._error(400, "Validation exception.", {"schema": {"errors": [{"errorMessage": p} for p in problems]}})
            if kind == "invoices/booked":
                result = self._book(body)
            elif kind in ("customers", "products"):
                result = self._create_master(kind, body)
            else:
                result = self._create_document(kind, body)
            if isinstance(result, Response):
                return result
            text = json.dumps(result)
            if key:
                self._idempotent[(kind, key)] = (201, text)
            return Response(text, status=201, mimetype="application/json")

    def _create_master(self, kind: str, body: dict):
        if kind == "customers":
            number = body.get("customerNumber")
            if number is None:
                self.numbers["customers"] += 1
                number = self.numbers["customers"]
            if number in self.store["customers"]:
                return self._error(400, f"Customer {number} exists already.")
            item = {**body, "customerNumber": number, "self": f"{self.url}/customers/{number}"}
            self.store["customers"][number] = item
            return item
        number = body["productNumber"]
        if number in self.store["products"]:
            return self._error(400, f"Product {number} exists already.")
        item = {**body, "self": f"{self.url}/products/{number}"}
        self.store["products"][number] = item
        return item

    def _totals(self, body: dict) -> dict:
        net = Decimal(0)
        for line in body.get("lines") or []:
            amount = Decimal(str(line.get("quantity", 1))) * Decimal(str(line.get("unitNetPrice", 0)))
            amount -= amount * Decimal(str(line.get("discountPercentage", 0))) / 100
            net += amount.quantize(CENT, rounding=ROUND_HALF_UP)
        zone = ((body.get("recipient") or {}).get("vatZone") or {}).get("vatZoneNumber", 1)
        vat = (net * VAT_RATES.get(zone, Decimal(0))).quantize(CENT, rounding=ROUND_HALF_UP)
        return {"netAmount": _money(net), "vatAmount": _money(vat), "grossAmount": _money(net + vat)}

    def _create_document(self, kind: str, body: dict):
        customer = (body.get("customer") or {}).get("customerNumber")
        if customer not in self.store["customers"]:
            return self._error(400, f"Customer {customer} does not exist.", {"customer": {"errors": [{"errorMessage": "The customer does not exist."}]}})
        self.numbers[kind] += 1
        number = self.numbers[kind]
        field = "orderNumber" if kind == "orders/drafts" else "draftInvoiceNumber"
        document = {**body, field: number, **self._totals(body), "self": f"{self.url}/{kind}/{number}"}
        self.store[kind][number] = document
        return document

    def _book(self, body: dict):
        draft_number = ((body or {}).get("draftInvoice") or {}).get("draftInvoiceNumber")
        draft = self.store["invoices/drafts"].pop(draft_number, None)
        if draft is None:
            return self._error(400, f"Draft invoice {draft_number} does not exist.")
        self.numbers["invoices/booked"] += 1
        number = body.get("bookWithNumber") or self.numbers["invoices/booked"]
        booked = {**{k: v for k, v in draft.items() if k != "draftInvoiceNumber"}, "bookedInvoiceNumber": number,
                  "self": f"{self.url}/invoices/booked/{number}"}
        self.store["invoices/booked"][number] = booked
        return booked
