"""A fake of e-conomic's REST API (https://restapi.e-conomic.com) for tests, the demo and benchmarks.

    with FakeEconomic() as fake:            # fake.url == "http://127.0.0.1:<port>"
        fake.fail_next(1, status=500)       # faults, switchable at run time from any thread
        fake.set_sales_account(2, 1, 1070)  # the chart of accounts, changeable from a test
        ...
        fake.documents("invoices/booked")   # what was created

The app-install flow: `GET /secure/api1/requestaccess.aspx?appPublicToken=…&redirectUrl=…` (on
secure.e-conomic.com in reality, served here beside the API) is the grant page for the app whose public token
the fake was made with; accepting it (`POST`) adds a new agreement grant token that the API then takes with
the app secret token, and redirects to `redirectUrl` with `token=<grant>` appended to its own query string.
`revoke_grant` is removing the app in e-conomic.

It is meant to be no kinder than e-conomic. Every POST and PUT body is validated against e-conomic's
published draft-03 JSON schemas (plus e-conomic's own rules the validator does not know: no nulls,
`maxDecimal`, `full-date`), then against the agreement: a document's customer, currency, layout,
payment terms, VAT zone and each line's product must exist, as must a customer's currency, group,
payment terms and VAT zone and a product's group. `vatNumber` on a customer is refused unless the
agreement (`agreement_country`) is in Sweden, the UK, Germany, Poland or Finland. Such refusals come
back in e-conomic's annotated shape ("Validation failed. 1 error found.", errorCode E04300, `errors`
shaped like the request, lines under `lines.items[]` with `arrayIndex`); per-field error codes are
e-conomic's where published (E06000 not found, E04730, E07080, E07180) and E04300 elsewhere.

VAT is computed as e-conomic computes it, never taken from the body: a line's net is quantity ×
unitNetPrice less discountPercentage, rounded to 2 decimals; its product's group has a sales account for
the document's `recipient.vatZone` (`GET /product-groups/{n}/sales-accounts`), that account a VAT code
(`GET /accounts/{n}` → `vatAccount.vatCode`) and the code a rate (`GET /vat-accounts/{code}`). VAT is
summed per code and rounded half up per code; a line whose group has no sales account for the zone is
refused. The seeded chart (`_seed`): groups 1 "Services" and 2 "Goods" at 25 % at home (zone 1) and 0 %
in zones 2-4, group 3 at 0 % everywhere, groups 4 and 5 OSS sales at 19 % and 25 % in the EU zone only.
Under payment terms of type `dueDate` the body's `dueDate` is mandatory and kept; under any other the
fake computes it from `date` and the terms, as e-conomic does, whatever was sent.

Draft invoices and orders can be read, replaced (PUT, totals recomputed) and deleted. Lists page
(`skippages`, `pagesize` ≤ 1000) and filter (`$eq: $ne: $gt: $gte: $lt: $lte: $like: $in: $nin: $null:`
joined with `$and:`/`$or:`, grouped with parentheses, `$`-escaped; strings compare case-insensitively;
`$like:` takes `*` as wildcard and without one means "contains"; `$in:` takes numbers only). Document
lists carry no `lines`. `Idempotency-Key` on a POST replays the first answer. Numbers are assigned the
way e-conomic does (customers, draft and booked invoices, orders).

Journals ("kassekladder") and their vouchers, for payments, refunds, fees and payouts: `GET /journals[/{n}]`,
`GET /accounts[/{n}]` (balance and draftBalance from what is booked and what sits in journals),
`GET /accounting-years[/{year}[/entries]]` ("2025/2026" is written "2025_6_2026" in a URL),
`POST /journals/{n}/vouchers` (one voucher object or an array; the answer is always an array of the vouchers
made, numbered from the journal's series), `GET /journals/{n}/vouchers[/{year}-{number}]` (filters on nothing,
as restdocs lists no filterable property) and `GET /journals/{n}/entries` (filters on `text`, `date`, `amount`,
`voucher.voucherNumber`, ...), `DELETE /journals/{n}/entries/{entryNumber}`. A voucher is refused, annotated at
e.g. `entries.financeVouchers.items[arrayIndex 0].account`, when its accounting year does not exist or is
closed, an entry's date is outside that year, an account does not exist or takes no entries (headings, totals,
blocked, barred), a customer, booked invoice (`customerInvoice`, of that customer), currency or VAT code does
not exist, an amount has more than 2 decimals, a customer payment has neither `customer` nor `contraAccount`,
the journal takes only another entry type, or the voucher does not balance: an entry with account and
contraAccount balances itself, entries without one must sum to 0 per voucher (the fake does not fill in a
journal's default contra account). Amounts are debit-positive on the entry's own account (for customer
payments the debtor account of the customer's group), so a payment received is a negative customerPayment.
`book_journal(n)` is the accountant's "Book": vouchers move to the ledger and a payment naming a booked
invoice lowers its `remainder`; booking an invoice posts it too (debtors, sales, VAT).
"""

from __future__ import annotations

import calendar
import json
import random
import re
import secrets
import socket
import threading
import time
import uuid
from collections.abc import Callable, Collection
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from html import escape
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jsonschema
from werkzeug.wrappers import Request, Response

from .server import ServedDouble

SCHEMAS = Path(__file__).parent / "schemas"
GRANT_PAGE = "/secure/api1/requestaccess.aspx"  # on secure.e-conomic.com; the fake serves it beside the API
CENT = Decimal("0.01")
HUNDRED = Decimal(100)

DOCUMENT_KINDS = {"invoices/drafts": "draftInvoiceNumber", "orders/drafts": "orderNumber"}
LISTED_WITHOUT_LINES = ("invoices/drafts", "invoices/booked", "orders/drafts")
POST_SCHEMAS = {"invoices/drafts": "invoices.drafts.post.schema.json", "invoices/booked": "invoices.booked.post.schema.json",
                "orders/drafts": "orders.drafts.post.schema.json", "customers": "customers.post.schema.json",
                "products": "products.post.schema.json"}
PUT_SCHEMAS = {"invoices/drafts": "invoices.drafts.draftInvoiceNumber.put.schema.json",
               "orders/drafts": "orders.drafts.orderNumber.put.schema.json"}
# Reference data: the path and the property that identifies an item (`GET /<path>/<key>`).
RESOURCE_KEYS = {"customer-groups": "customerGroupNumber", "payment-terms": "paymentTermsNumber", "vat-zones": "vatZoneNumber",
                 "layouts": "layoutNumber", "currencies": "code", "product-groups": "productGroupNumber", "units": "unitNumber",
                 "accounts": "accountNumber", "vat-accounts": "vatCode"}
STRING_KEYED = ("currencies", "vat-accounts")

# `vatNumber` on a customer: "only available to agreements in Sweden, UK, Germany, Poland and Finland".
VAT_NUMBER_COUNTRIES = {"SE", "GB", "UK", "DE", "PL", "FI"}
COUNTRY_NAMES = {"DK": "Denmark", "SE": "Sweden", "NO": "Norway", "DE": "Germany", "GB": "United Kingdom",
                 "UK": "United Kingdom", "PL": "Poland", "FI": "Finland", "NL": "Netherlands"}
CURRENCIES = (
    ("DKK", "Danish krone", "208"), ("EUR", "Euro", "978"), ("USD", "US dollar", "840"), ("SEK", "Swedish krona", "752"),
    ("NOK", "Norwegian krone", "578"), ("GBP", "Pound sterling", "826"), ("CHF", "Swiss franc", "756"),
    ("PLN", "Polish złoty", "985"), ("JPY", "Japanese yen", "392"), ("KWD", "Kuwaiti dinar", "414"),
    ("ISK", "Icelandic króna", "352"), ("CZK", "Czech koruna", "203"), ("HUF", "Hungarian forint", "348"),
    ("CAD", "Canadian dollar", "124"), ("AUD", "Australian dollar", "036"),
)

# DKK for 100 units of each currency (e-conomic quotes rates per 100); rates against another base currency
# are crossed through DKK. Deterministic, not today's market; change one with `set_exchange_rate`.
EXCHANGE_RATES = {"DKK": "100", "EUR": "746.00", "USD": "690.00", "SEK": "65.00", "NOK": "64.00", "GBP": "870.00",
                  "CHF": "780.00", "PLN": "172.00", "JPY": "4.60", "KWD": "2250.00", "ISK": "5.10", "CZK": "29.70",
                  "HUF": "1.85", "CAD": "500.00", "AUD": "450.00"}

ACCOUNT_TYPES = ("profitAndLoss", "status", "totalFrom", "heading", "headingStart", "sumInterval", "sumAlpha")
POSTABLE_ACCOUNT_TYPES = ("profitAndLoss", "status")  # the others are headings and totals
# A voucher's `entries`, by array name and entry type, in the order e-conomic lists a journal's entries.
ENTRY_KINDS = {"financeVouchers": "financeVoucher", "supplierInvoices": "supplierInvoice", "supplierPayments": "supplierPayment",
               "customerPayments": "customerPayment", "manualCustomerInvoices": "manualCustomerInvoice"}
VOUCHER_SCHEMA = "journals.journalNumber.vouchers.post.schema.json"
ROUNDING_ACCOUNT = 1090  # where a booked invoice's base-currency rounding goes
# What each collection lets `filter=` name (restdocs' "Filterable properties"); anything else is a 400.
FILTERABLE = {
    "journals": {"journalNumber", "name"},
    "accounts": {"accountNumber", "accountType", "balance", "barred", "blockDirectEntries", "debitCredit", "name"},
    "accounting-years": {"fromDate", "toDate", "year"},
    "journal-vouchers": set(),  # GET /journals/{n}/vouchers filters on nothing
    "journal-entries": {"amount", "amountDefaultCurrency", "contraAccount.accountNumber", "contraVatAccount.vatCode",
                        "contraVatAmount", "currency.code", "date", "employee.employeeNumber", "entryType", "exchangeRate",
                        "journalEntryNumber", "text", "voucher.voucherNumber"},
    "year-entries": {"amount", "amountInBaseCurrency", "currency", "customer.customerNumber", "date", "dueDate", "entryNumber",
                     "entryType", "quantity1", "quantity2", "remainder", "remainderInBaseCurrency", "supplier.supplierNumber",
                     "supplierInvoiceNumber", "text", "unit1.unitNumber", "unit2.unitNumber", "voucherNumber"},
}


def year_id(year: str) -> str:
    """An accounting year as e-conomic writes it in a URL: "2025/2026" is "2025_6_2026"."""
    return year.replace("/", "_6_")


def _money(value: Decimal) -> float:
    return float(value.quantize(CENT, rounding=ROUND_HALF_UP))


def _decimal(value: Any, default: str = "0") -> Decimal:
    return Decimal(str(value)) if value is not None else Decimal(default)


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


# -- filters ------------------------------------------------------------------------------------------

class FilterError(ValueError):
    """A `filter=` e-conomic would answer 400 to."""


FILTER_ESCAPABLE = "$(),*[]"
_FILTER_OPERATOR = re.compile(r"\$(eq|ne|gte|gt|lte|lt|like|nin|in|and|or|null):")
_COMPARISONS = ("eq", "ne", "gt", "gte", "lt", "lte", "like", "in", "nin")
IN_LIST_LIMIT = 200


def _filter_tokens(text: str) -> list[tuple]:
    """("char", c, escaped) for each character, ("op", name) for each `$name:`, ("(",) and (")",)."""
    tokens: list[tuple] = []
    index = 0
    while index < len(text):
        char = text[index]
        if char == "$":
            if text[index + 1:index + 2] and text[index + 1] in FILTER_ESCAPABLE:
                tokens.append(("char", text[index + 1], True))
                index += 2
                continue
            match = _FILTER_OPERATOR.match(text, index)
            if not match:
                raise FilterError(f"Unknown operator or escape sequence at {text[index:index + 8]!r}.")
            tokens.append(("op", match.group(1)))
            index = match.end()
            continue
        tokens.append((char,) if char in "()" else ("char", char, False))
        index += 1
    return tokens


def _field_value(item: dict, path: str) -> Any:
    current: Any = item
    for part in path.split("."):
        current = current.get(part) if isinstance(current, dict) else None
    return current


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _order(actual: Any, wanted: str) -> int:
    """-1, 0 or 1 as `actual` sorts before, with or after the filter's `wanted` text."""
    if isinstance(actual, (dict, list)):
        raise FilterError("Only simple properties can be filtered on.")
    if isinstance(actual, (int, float)) and not isinstance(actual, bool):
        try:
            left, right = Decimal(str(actual)), Decimal(wanted)
        except InvalidOperation:
            raise FilterError(f"{wanted!r} is not a number.") from None
    else:
        left, right = _as_text(actual).casefold(), wanted.casefold()
    return (left > right) - (left < right)


def _predicate(field: str, operator: str, value: list[tuple]) -> Callable[[dict], bool]:
    null = ("op", "null")

    def text_of(tokens):
        if null in tokens:
            if tokens != [null]:
                raise FilterError("$null: stands alone as a value.")
            return None
        return "".join(token[1] for token in tokens)

    if operator in ("in", "nin"):
        if not value or value[0] != ("char", "[", False) or value[-1] != ("char", "]", False):
            raise FilterError(f"${operator}: takes a list in brackets: {field}${operator}:[1,2,3].")
        elements, current = [], []
        for token in value[1:-1]:
            if token == ("char", ",", False):
                elements.append(current)
                current = []
            else:
                current.append(token)
        elements.append(current)
        wanted = [text_of(element) for element in elements]
        if len(wanted) > IN_LIST_LIMIT:
            raise FilterError(f"${operator}: takes at most {IN_LIST_LIMIT} values.")
        for item in wanted:
            try:
                if item is not None:
                    Decimal(item)
            except InvalidOperation:
                raise FilterError(f"${operator}: works on numeric properties only ({item!r} is not a number).") from None

        def test(item: dict) -> bool:
            actual = _field_value(item, field)
            found = any(actual is None if w is None else actual is not None and _order(actual, w) == 0 for w in wanted)
            return found if operator == "in" else not found
        return test

    wanted = text_of(value)
    if wanted is None:
        if operator not in ("eq", "ne"):
            raise FilterError("$null: works with $eq: and $ne: only.")
        return lambda item: (_field_value(item, field) is None) == (operator == "eq")
    if operator == "like":
        if any(token == ("char", "*", False) for token in value):
            pattern = "".join(".*" if token == ("char", "*", False) else re.escape(token[1]) for token in value)
        else:  # no wildcard: "contains"
            pattern = ".*" + re.escape(wanted) + ".*"
        regex = re.compile(pattern, re.IGNORECASE | re.DOTALL)

        def like(item: dict) -> bool:
            actual = _field_value(item, field)
            return actual is not None and not isinstance(actual, (dict, list)) and regex.fullmatch(_as_text(actual)) is not None
        return like

    accept = {"eq": lambda o: o == 0, "ne": lambda o: o != 0, "gt": lambda o: o > 0, "gte": lambda o: o >= 0,
              "lt": lambda o: o < 0, "lte": lambda o: o <= 0}[operator]

    def compare(item: dict) -> bool:
        actual = _field_value(item, field)
        if actual is None:
            return operator == "ne"
        return accept(_order(actual, wanted))
    return compare


def parse_filter(text: str, filterable: Collection[str] | None = None) -> Callable[[dict], bool]:
    """e-conomic's `filter=` syntax as a test on one item; `$and:` binds tighter than `$or:`. With
    `filterable`, a predicate on any other property is refused, as e-conomic refuses it (400)."""
    tokens = _filter_tokens(text)
    position = 0

    def peek():
        return tokens[position] if position < len(tokens) else None

    def joined(operator, part):
        nonlocal position
        tests = [part()]
        while peek() == ("op", operator):
            position += 1
            tests.append(part())
        if len(tests) == 1:
            return tests[0]
        return (lambda item: any(t(item) for t in tests)) if operator == "or" else (lambda item: all(t(item) for t in tests))

    def either():
        return joined("or", both)

    def both():
        return joined("and", atom)

    def atom():
        nonlocal position
        if peek() == ("(",):
            position += 1
            test = either()
            if peek() != (")",):
                raise FilterError("A parenthesis is not closed.")
            position += 1
            return test
        field = ""
        while (token := peek()) and token[0] == "char":
            field += token[1]
            position += 1
        operator = peek()
        if not field or not operator or operator[0] != "op" or operator[1] not in _COMPARISONS:
            raise FilterError("Each predicate is a property, an operator and a value: name$eq:Joe.")
        position += 1
        value = []
        while (token := peek()) and (token[0] == "char" or token == ("op", "null")):
            value.append(token)
            position += 1
        if filterable is not None and field.strip() not in filterable:
            allowed = ", ".join(sorted(filterable)) if filterable else "none"
            raise FilterError(f"'{field.strip()}' is not a filterable property of this collection (filterable: {allowed}).")
        return _predicate(field.strip(), operator[1], value)

    test = either()
    if position != len(tokens):
        raise FilterError("The filter has a stray parenthesis or operator.")
    return test


# -- annotated errors ---------------------------------------------------------------------------------

_NO_VALUE = object()


class ValidationErrors:
    """e-conomic's annotated errors: the request's shape, each failing property holding its `errors`."""

    def __init__(self) -> None:
        self.tree: dict = {}
        self.count = 0

    def add(self, field: str, message: str, *, code: str = "E04300", value: Any = _NO_VALUE, hint: str | None = None,
            line: int | None = None) -> None:
        """An error at a dotted field of the body, or of its line number `line`."""
        parts = (["lines", line] if line is not None else []) + field.split(".")
        self.add_at(parts, message, code=code, value=value, hint=hint)

    def add_at(self, parts: list, message: str, *, code: str = "E04300", value: Any = _NO_VALUE,
               hint: str | None = None) -> None:
        """An error at a path such as ["entries", "financeVouchers", 0, "account"]: each array index becomes
        an `items` element carrying `arrayIndex`, as e-conomic annotates `lines`."""
        node = self.tree
        *steps, leaf = parts
        for step in steps:
            if isinstance(step, int):
                items = node.setdefault("items", [])
                found = next((item for item in items if item["arrayIndex"] == step), None)
                if found is None:
                    found = {"arrayIndex": step}
                    items.append(found)
                    items.sort(key=lambda item: item["arrayIndex"])
                node = found
            else:
                node = node.setdefault(step, {})
        error = {"propertyName": leaf, "errorMessage": message, "errorCode": code}
        if value is not _NO_VALUE and value is not None:
            error["inputValue"] = value
        if hint:
            error["developerHint"] = hint
        node.setdefault(leaf, {}).setdefault("errors", []).append(error)
        self.count += 1

    def __bool__(self) -> bool:
        return self.count > 0


class FakeEconomic(ServedDouble):
    def __init__(self, app_secret_token: str = "app", agreement_grant_token: str = "grant", seed: int = 7,
                 agreement_country: str = "DK", base_currency: str = "DKK", app_public_token: str = "app-public",
                 app_name: str = "Invoice Sync") -> None:
        self.app_secret_token = app_secret_token
        self.agreement_grant_token = agreement_grant_token
        # The app's public token opens its grant page; each acceptance there adds an agreement grant token.
        self.app_public_token = app_public_token
        self.app_name = app_name
        self.grant_tokens: set[str] = {agreement_grant_token}
        self.agreement_country = agreement_country.upper()
        self.base_currency = base_currency
        self.lock = threading.RLock()
        self.random = random.Random(seed)
        self.requests: list[dict] = []
        self.latency = 0.0
        self.wait_and_drop = False  # drop the connection after the next document is created, once
        self.drop_after_creating: set[str] = set()  # paths ("customers", "products") whose next create's answer is lost
        self.delay_after_create = 0.0  # seconds between making a document (invoice, order) and answering
        self.pause_after: dict[str, float] = {}  # path ("customers", "invoices/booked", …) → seconds to sit on the answer
        self.fail_ratio = 0.0
        self._faults: list[tuple[str, dict]] = []
        self._idempotent: dict[tuple[str, str], tuple[int, str]] = {}
        self.store: dict[str, dict[Any, dict]] = {
            "customers": {}, "products": {}, "invoices/drafts": {}, "invoices/booked": {}, "orders/drafts": {},
        }
        self.numbers = {"customers": 1000, "invoices/drafts": 0, "invoices/booked": 20000, "orders/drafts": 0,
                        "journal-entries": 0, "ledger-entries": 0}
        self.exchange_rates = {code: Decimal(rate) for code, rate in EXCHANGE_RATES.items()}
        self.accounting_years: dict[str, dict] = {}
        self.journals: dict[int, dict] = {}
        self.journal_vouchers: dict[int, dict[tuple[str, int], dict]] = {}  # journal → (year, number) → voucher
        self.booked_vouchers: dict[tuple[str, int], dict] = {}
        self.ledger: list[dict] = []  # booked entries, one per account touched, amounts in base currency
        self.resources: dict[str, dict[Any, dict]] = {kind: {} for kind in RESOURCE_KEYS}
        self.sales_accounts: dict[int, dict[int, int]] = {}  # product group → VAT zone → sales account
        self.serve(self.wsgi)
        self._seed()

    def _seed(self) -> None:
        def put(kind, item):
            self.resources[kind][item[RESOURCE_KEYS[kind]]] = {**item, "self": f"{self.url}/{kind}/{item[RESOURCE_KEYS[kind]]}"}

        for number, name in ((1, "Domestic customers"), (2, "Foreign customers")):
            put("customer-groups", {"customerGroupNumber": number, "name": name, "customers": f"{self.url}/customer-groups/{number}/customers"})
        put("payment-terms", {"paymentTermsNumber": 1, "name": "Net 14 days", "daysOfCredit": 14, "paymentTermsType": "net"})
        put("payment-terms", {"paymentTermsNumber": 2, "name": "Due date", "paymentTermsType": "dueDate"})
        for number, name in ((1, "Domestic"), (2, "EU"), (3, "Abroad"), (4, "Domestic (exempt)")):
            put("vat-zones", {"vatZoneNumber": number, "name": name, "enabledForCustomer": True, "enabledForSupplier": True})
        put("layouts", {"layoutNumber": 19, "name": "Standard invoice layout"})
        for code, name, iso_number in CURRENCIES:
            put("currencies", {"code": code, "name": name, "isoNumber": iso_number})
        put("units", {"unitNumber": 1, "name": "pcs.", "products": f"{self.url}/units/1/products"})

        # The chart of accounts: VAT ledger accounts, VAT codes, sales accounts, product groups.
        self.add_account(14261, "Salgsmoms", account_type="status")
        self.add_account(14265, "Moms af OSS-salg", account_type="status")
        self.add_vat_account("U25", 25, "Salgsmoms 25 %", account=14261)
        self.add_vat_account("OSSDE", 19, "OSS-moms Tyskland 19 %", account=14265)
        self.add_vat_account("OSSSE", 25, "OSS-moms Sverige 25 %", account=14265)
        self.add_account(1010, "Salg af varer/ydelser m/moms", vat_code="U25")
        self.add_account(1020, "Salg af ydelser til EU (omvendt betalingspligt)")
        self.add_account(1030, "Salg til udlandet")
        self.add_account(1040, "Momsfritaget salg")
        self.add_account(1050, "OSS-salg Tyskland 19 %", vat_code="OSSDE")
        self.add_account(1060, "OSS-salg Sverige 25 %", vat_code="OSSSE")
        self.add_account(1090, "Øreafrunding")
        for number, name in ((1, "Services"), (2, "Goods")):
            self.add_product_group(number, name)
            for zone, account in ((1, 1010), (2, 1020), (3, 1030), (4, 1040)):
                self.set_sales_account(number, zone, account)
        self.add_product_group(3, "Rounding and fees (no VAT)")
        for zone in (1, 2, 3, 4):
            self.set_sales_account(3, zone, 1090)
        self.add_product_group(4, "OSS Germany")
        self.set_sales_account(4, 2, 1050)
        self.add_product_group(5, "OSS Sweden")
        self.set_sales_account(5, 2, 1060)

        # Debtors, bank, the Stripe clearing account, fees and purchase VAT (e-conomic's Danish standard chart
        # numbers), with a heading and a total that take no entries; each customer group's debtor account.
        self.add_account(5600, "Debitorer", account_type="status", debit_credit="debit")
        self.add_account(5610, "Udenlandske debitorer", account_type="status", debit_credit="debit")
        self.add_account(5800, "Likvide beholdninger", account_type="heading")
        self.add_account(5820, "Bank", account_type="status", debit_credit="debit")
        self.add_account(5830, "Stripe balance", account_type="status", debit_credit="debit")
        self.add_account(5899, "Likvide beholdninger i alt", account_type="sumInterval", summed=(5800, 5898))
        self.add_account(7220, "Gebyrer", debit_credit="debit")
        self.add_account(14262, "Købsmoms", account_type="status", debit_credit="debit")
        self.add_vat_account("I25", 25, "Købsmoms 25 %", account=14262, vat_type="Købsmoms")
        for group, account in ((1, 5600), (2, 5610)):
            self.resources["customer-groups"][group]["account"] = {"accountNumber": account, "self": f"{self.url}/accounts/{account}"}

        # Accounting years (calendar years) and journals ("kassekladder").
        self.add_accounting_year("2025", date(2025, 1, 1), date(2025, 12, 31))
        self.add_accounting_year("2026", date(2026, 1, 1), date(2026, 12, 31))
        self.add_journal(1, "Kassekladde")
        self.add_journal(2, "Indbetalinger", entry_type_restricted_to="customerPayment", minimum_voucher_number=5000,
                         maximum_voucher_number=5999, contra_accounts={"customerPayments": 5820})

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

    def expire_idempotency_keys(self) -> None:
        """What e-conomic does after its key window (it does not publish how long; about an hour): a repeated
        Idempotency-Key is a new request again."""
        with self.lock:
            self._idempotent.clear()

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

    # -- the chart of accounts --------------------------------------------------------------------------

    def add_vat_account(self, code: str, rate: Decimal | float | int | str, name: str | None = None,
                        account: int = 14261, vat_type: str = "Salgsmoms") -> dict:
        """A VAT code (`GET /vat-accounts/{code}`) at `rate` percent, posting its VAT to ledger `account`."""
        with self.lock:
            if len(code) > 5:
                raise ValueError(f"VAT code {code!r}: e-conomic's codes have at most 5 characters.")
            if account not in self.resources["accounts"]:
                raise ValueError(f"Account {account} is not in the chart; add it first.")
            item = {"vatCode": code, "name": (name or f"{code} {rate} %")[:40], "ratePercentage": float(Decimal(str(rate))),
                    "vatType": {"vatTypeNumber": 1 if vat_type == "Salgsmoms" else 2, "name": vat_type,
                                "self": f"{self.url}/vat-types/{1 if vat_type == 'Salgsmoms' else 2}"},
                    "account": {"accountNumber": account, "self": f"{self.url}/accounts/{account}"},
                    "self": f"{self.url}/vat-accounts/{code}"}
            self.resources["vat-accounts"][code] = item
            return item

    def add_account(self, number: int, name: str, vat_code: str | None = None, account_type: str = "profitAndLoss", *,
                    debit_credit: str = "credit", block_direct_entries: bool = False, barred: bool = False,
                    summed: tuple[int, int] | None = None) -> dict:
        """An account in the chart (`GET /accounts/{number}`), with the VAT code sales on it carry, if any.
        Only `profitAndLoss` and `status` accounts, neither blocked for direct entries nor barred, take entries;
        headings (`heading`, `headingStart`) and totals (`sumInterval`, `sumAlpha`, `totalFrom`) never do.
        `summed` is the (from, to) interval a `sumInterval` account adds up."""
        with self.lock:
            if account_type not in ACCOUNT_TYPES:
                raise ValueError(f"Account type {account_type!r} is not one of e-conomic's: {', '.join(ACCOUNT_TYPES)}.")
            if vat_code is not None and vat_code not in self.resources["vat-accounts"]:
                raise ValueError(f"VAT code {vat_code!r} does not exist; add it with add_vat_account first.")
            item = {"accountNumber": number, "accountType": account_type, "balance": 0.0, "draftBalance": 0.0,
                    "barred": barred, "blockDirectEntries": block_direct_entries, "debitCredit": debit_credit,
                    "name": name[:125], "accountingYears": f"{self.url}/accounts/{number}/accounting-years",
                    "self": f"{self.url}/accounts/{number}"}
            if summed is not None:
                item["accountsSummed"] = [{"fromAccount": {"accountNumber": summed[0], "self": f"{self.url}/accounts/{summed[0]}"},
                                           "toAccount": {"accountNumber": summed[1], "self": f"{self.url}/accounts/{summed[1]}"}}]
            if vat_code is not None:
                item["vatAccount"] = {"vatCode": vat_code, "self": f"{self.url}/vat-accounts/{vat_code}"}
            self.resources["accounts"][number] = item
            return item

    def add_product_group(self, number: int, name: str) -> dict:
        """A product group with no sales accounts yet (give it some with `set_sales_account`)."""
        with self.lock:
            base = f"{self.url}/product-groups/{number}"
            item = {"productGroupNumber": number, "name": name[:50], "salesAccounts": f"{base}/sales-accounts",
                    "products": f"{base}/products", "self": base}
            self.resources["product-groups"][number] = item
            self.sales_accounts.setdefault(number, {})
            return item

    def set_sales_account(self, group: int, zone: int, account: int | None) -> None:
        """Sales in VAT `zone` of products in `group` go to `account` (None: the group has none for the zone)."""
        with self.lock:
            if group not in self.resources["product-groups"]:
                raise ValueError(f"Product group {group} does not exist; add it with add_product_group first.")
            if zone not in self.resources["vat-zones"]:
                raise ValueError(f"VAT zone {zone} does not exist.")
            if account is None:
                self.sales_accounts[group].pop(zone, None)
                return
            if account not in self.resources["accounts"]:
                raise ValueError(f"Account {account} is not in the chart; add it with add_account first.")
            self.sales_accounts[group][zone] = account

    def vat_rate(self, group: int, zone: int) -> Decimal | None:
        """The VAT percentage sales of `group` in `zone` carry, None when the group has no account there."""
        with self.lock:
            account = self.sales_accounts.get(group, {}).get(zone)
            if account is None:
                return None
            code = (self.resources["accounts"][account].get("vatAccount") or {}).get("vatCode")
            return Decimal(str(self.resources["vat-accounts"][code]["ratePercentage"])) if code else Decimal(0)

    # -- the HTTP side ----------------------------------------------------------------------------------

    def wsgi(self, environ, start_response):
        request = Request(environ)
        if request.path.rstrip("/").lower() == GRANT_PAGE:
            response = self.grant_page(request)
        else:
            response = self.handle(request, environ)
        self.saved_after(request.method)
        return response(environ, start_response)

    # -- keeping the agreement's data between runs (make demo): ServedDouble.keep_data_in --------------

    # What the agreement holds: what the API made or changed, and the chart it was seeded with. Not the
    # requests seen, the faults queued or the idempotency keys (e-conomic forgets those within the hour).
    KEPT = ("grant_tokens", "store", "numbers", "accounting_years", "journals", "journal_vouchers",
            "booked_vouchers", "ledger", "resources", "sales_accounts")

    # -- the grant page (e-conomic's app-install flow) ---------------------------------------------------

    def grant(self) -> str:
        """A new agreement grant token for this agreement, as accepting the grant page makes."""
        token = secrets.token_urlsafe(30) + "1"
        with self.lock:
            self.grant_tokens.add(token)
        return token

    def revoke_grant(self, token: str) -> None:
        """What removing the app in e-conomic's settings does: the token opens nothing any more."""
        with self.lock:
            self.grant_tokens.discard(token)

    def grant_page(self, request: Request) -> Response:
        """`GET /secure/api1/requestaccess.aspx?appPublicToken=…&redirectUrl=…&locale=…` asks the (always
        signed-in) user to add the app; `POST` is their "Accept": a new grant token, appended as `token` to
        `redirectUrl`'s own query string, or shown on the page when there is no redirectUrl. An unknown app
        or a redirectUrl that is not an absolute http(s) URL gets an error page and no token."""
        values = request.form if request.method == "POST" else request.args
        public_token, redirect_url = values.get("appPublicToken", ""), values.get("redirectUrl", "")
        with self.lock:
            self.requests.append({"method": request.method, "path": request.path, "query": dict(request.args),
                                  "headers": dict(request.headers), "json": None})
        if request.method not in ("GET", "POST"):
            return self._grant_html("Not allowed", "<p>This page only shows the request and takes its answer.</p>", 405)
        if not public_token or public_token != self.app_public_token:
            return self._grant_html("The app was not found",
                                    "<p>The link you followed does not name an app that can be added. "
                                    "Ask the app's supplier for a new link.</p>", 404)
        if redirect_url and not re.fullmatch(r"https?://[^\s/?#]+[^\s]*", redirect_url):
            return self._grant_html("The link is not valid", "<p>The app's return address is not a web address.</p>", 400)
        if request.method == "GET":
            return self._grant_html("Add app", self._grant_question(public_token, redirect_url, values.get("locale", "")))
        token = self.grant()
        if not redirect_url:
            return self._grant_html("App added", f"<p>Give this Agreement Grant Token to {escape(self.app_name)}:</p>"
                                                 f"<p><code id='token'>{escape(token)}</code></p>")
        separator = "&" if "?" in redirect_url else "?"
        response = Response(b"", status=302)
        response.headers["Location"] = f"{redirect_url}{separator}token={quote(token, safe='')}"
        return response

    def _grant_question(self, public_token: str, redirect_url: str, locale: str) -> str:
        me = self._self()
        hidden = "".join(f"<input type='hidden' name='{name}' value='{escape(value)}'>"
                         for name, value in (("appPublicToken", public_token), ("redirectUrl", redirect_url), ("locale", locale)))
        return (f"<p><strong>{escape(self.app_name)}</strong> wants access to <strong>{escape(me['company']['name'])}</strong> "
                f"(agreement {me['agreementNumber']}).</p>"
                f"<form method='post' action='{GRANT_PAGE}'>{hidden}<button type='submit'>Accept</button></form>")

    def _grant_html(self, title: str, body: str, status: int = 200) -> Response:
        page = (f"<!doctype html><html lang='en'><head><meta charset='utf-8'>"
                f"<meta name='viewport' content='width=device-width, initial-scale=1'>"
                f"<link rel='icon' href='data:,'>"  # no /favicon.ico request: the API would answer it 401
                f"<title>{escape(title)} · e-conomic (fake)</title></head>"
                f"<body><main><h1>{escape(title)}</h1>{body}</main></body></html>")
        return Response(page, status=status, mimetype="text/html")

    def _error(self, status: int, message: str, errors: dict | None = None, *, error_code: str | None = None,
               hint: str | None = None, extra: dict | None = None, **headers) -> Response:
        body = {"message": message, "errorCode": error_code or f"E{status:03d}00", "developerHint": hint or message,
                "logId": uuid.uuid4().hex[:16], "httpStatusCode": status, "logTime": time.strftime("%Y-%m-%dT%H:%M:%S")}
        if errors:
            body["errors"] = errors
        body.update(extra or {})
        response = Response(json.dumps(body), status=status, mimetype="application/json")
        for name, value in headers.items():
            response.headers[name.replace("_", "-")] = str(value)
        return response

    def _invalid(self, errors: ValidationErrors) -> Response:
        count = errors.count
        return self._error(400, f"Validation failed. {count} error{'' if count == 1 else 's'} found.", errors.tree,
                           error_code="E04300", hint="Inspect validation errors and correct your request.",
                           extra={"errorCount": count})

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
            if fault is None and request.method == "POST" and path in self.drop_after_creating:
                self.drop_after_creating.discard(path)
                fault = ("drop_after", {})
            if fault is None and self.wait_and_drop and request.method == "POST" and path in ("invoices/drafts", "invoices/booked", "orders/drafts"):
                self.wait_and_drop = False
                fault = ("drop_after", {})
            if fault is None and self.fail_ratio and self.random.random() < self.fail_ratio:
                fault = self.random.choice([("status", {"status": 500, "retry_after": None}),
                                            ("status", {"status": 429, "retry_after": 1}), ("drop_after", {})])
        if self.latency:
            time.sleep(self.latency)
        if (request.headers.get("X-AppSecretToken") != self.app_secret_token
                or request.headers.get("X-AgreementGrantToken") not in self.grant_tokens):
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
        parts = path.split("/")
        if path == "self" and method == "GET":
            return self._json(self._self())
        if parts[0] in ("journals", "accounting-years", "accounts"):
            answer = self._route_ledger(request, body, parts)
            if answer is not None:
                return answer
        if parts[0] in self.resources and method == "GET":
            with self.lock:
                if len(parts) == 1:
                    return self._collection(request, [item for _, item in sorted(self.resources[path].items())])
                key = parts[1].upper() if parts[0] == "currencies" else parts[1]
                if parts[0] not in STRING_KEYED:
                    key = int(key) if key.isdigit() else None
                item = self.resources[parts[0]].get(key)
                if len(parts) == 3 and parts[0] == "product-groups" and parts[2] == "sales-accounts" and item:
                    return self._collection(request, self._sales_accounts(key))
                if len(parts) == 2 and item:
                    return self._json(item)
                return self._error(404, f"No {parts[0]} {parts[1]}.")
        for kind in ("invoices/drafts", "invoices/booked", "orders/drafts", "customers", "products"):
            if path == kind:
                if method == "GET":
                    with self.lock:
                        items = [item for _, item in sorted(self.store[kind].items())]
                        if kind in LISTED_WITHOUT_LINES:
                            items = [{k: v for k, v in item.items() if k != "lines"} for item in items]
                        return self._collection(request, items)
                if method == "POST":
                    return self._create(kind, request, body)
            if path.startswith(kind + "/"):
                key = path[len(kind) + 1:]
                if kind != "products":
                    key = int(key) if key.isdigit() else None
                with self.lock:
                    item = self.store[kind].get(key)
                    if item is None and method in ("GET", "PUT", "DELETE"):
                        return self._error(404, f"No {kind} {path[len(kind) + 1:]}.")
                    if method == "GET":
                        return self._json(item)
                    if method == "PUT" and kind in DOCUMENT_KINDS:
                        return self._update_document(kind, key, body)
                    if method == "DELETE" and kind in DOCUMENT_KINDS:
                        del self.store[kind][key]
                        return Response(b"", status=204)
        return self._error(404, f"{method} /{path} is not served by the fake.")

    def _self(self) -> dict:
        country = COUNTRY_NAMES.get(self.agreement_country, self.agreement_country)
        return {"agreementNumber": 123456,
                "company": {"name": "Fake ApS", "addressLine1": "Fakevej 1", "zip": "1000", "city": "København K",
                            "country": country, "companyIdentificationNumber": "12345678"},
                "settings": {"baseCurrency": self.base_currency},
                "self": f"{self.url}/self"}

    def _sales_accounts(self, group: int) -> list[dict]:
        pairs = sorted(self.sales_accounts.get(group, {}).items(), key=lambda pair: (pair[1], pair[0]))
        return [{"salesAccount": self.resources["accounts"][account], "vatZone": self.resources["vat-zones"][zone]}
                for zone, account in pairs]

    def _collection(self, request: Request, items: list[dict], filterable: Collection[str] | None = None) -> Response:
        everything = len(items)
        wanted = request.args.get("filter")
        if wanted:
            try:
                test = parse_filter(wanted, filterable)
                items = [item for item in items if test(item)]
            except FilterError as problem:
                return self._error(400, f"The filter is not valid: {problem}", error_code="E04000",
                                   hint="See https://restdocs.e-conomic.com/#filtering for the filter syntax.")
        try:
            pagesize = min(int(request.args.get("pagesize", 20)), 1000)
            skip = int(request.args.get("skippages", 0))
        except ValueError:
            return self._error(400, "skippages and pagesize are whole numbers.")
        page = items[skip * pagesize:(skip + 1) * pagesize]
        pagination = {"skipPages": skip, "pageSize": pagesize, "maxPageSizeAllowed": 1000, "results": len(items),
                      "resultsWithoutFilter": everything, "firstPage": request.base_url, "lastPage": request.base_url}
        if (skip + 1) * pagesize < len(items):
            pagination["nextPage"] = f"{request.base_url}?skippages={skip + 1}&pagesize={pagesize}"
        return self._json({"collection": page, "pagination": pagination, "self": request.url})

    def _create(self, kind: str, request: Request, body, make: Callable[[Any], Any] | None = None) -> Response:
        """A POST under `Idempotency-Key`: a repeat replays the first answer. `make` builds the answer (or a
        refusal) for kinds that validate on their own (journal vouchers)."""
        key = request.headers.get("Idempotency-Key")
        with self.lock:
            if key and (kind, key) in self._idempotent:
                status, text = self._idempotent[(kind, key)]
                response = Response(text, status=status, mimetype="application/json")
                response.headers["X-ResultFromCache"] = "true"
                return response
            problems = [] if make else schema_problems(POST_SCHEMAS[kind], body)
            if problems:
                return self._error(400, "Validation exception.", {"schema": {"errors": [{"errorMessage": p} for p in problems]}})
            if make is not None:
                result = make(body)
            elif kind == "invoices/booked":
                result = self._book(body)
            elif kind in ("customers", "products"):
                result = self._create_master(kind, body)
            else:
                result = self._save_document(kind, body)
            if isinstance(result, Response):
                return result
            text = json.dumps(result)
            if key:
                self._idempotent[(kind, key)] = (201, text)
            return Response(text, status=201, mimetype="application/json")

    # -- reference checks -------------------------------------------------------------------------------

    def _reference(self, errors: ValidationErrors, kind: str, field: str, value: Any, label: str,
                   code: str = "E06000") -> dict | None:
        """The `kind` item `value` names, or an error on `field` when there is none."""
        key = value.upper() if kind == "currencies" and isinstance(value, str) else value
        item = self.resources[kind].get(key)
        if item is None:
            message = f"Property {field} is required." if value is None else f"{label} '{value}' not found."
            errors.add(field, message, code=code, value=value,
                       hint=f"Find a list of {kind.replace('-', ' ')} at https://restapi.e-conomic.com/{kind} .")
        return dict(item) if item else None

    def _create_master(self, kind: str, body: dict):
        errors = ValidationErrors()
        if kind == "customers":
            self._reference(errors, "currencies", "currency", body.get("currency"), "Currency")
            self._reference(errors, "customer-groups", "customerGroup", (body.get("customerGroup") or {}).get("customerGroupNumber"), "CustomerGroup")
            self._reference(errors, "payment-terms", "paymentTerms", (body.get("paymentTerms") or {}).get("paymentTermsNumber"), "PaymentTerms", "E07080")
            self._reference(errors, "vat-zones", "vatZone", (body.get("vatZone") or {}).get("vatZoneNumber"), "VatZone")
            if "layout" in body:
                self._reference(errors, "layouts", "layout", (body.get("layout") or {}).get("layoutNumber"), "Layout")
            if "vatNumber" in body and self.agreement_country not in VAT_NUMBER_COUNTRIES:
                errors.add("vatNumber", "vatNumber is only available to agreements in Sweden, UK, Germany, Poland and "
                           "Finland. Use corporateIdentificationNumber.", value=body["vatNumber"],
                           hint="On other agreements the customer's VAT or company number goes in corporateIdentificationNumber.")
            if errors:
                return self._invalid(errors)
            number = body.get("customerNumber")
            if number is None:
                self.numbers["customers"] += 1
                number = self.numbers["customers"]
            if number in self.store["customers"]:
                return self._error(400, f"Customer {number} exists already.")
            item = {**body, "customerNumber": number, "self": f"{self.url}/customers/{number}"}
            self.store["customers"][number] = item
            return item
        self._reference(errors, "product-groups", "productGroup", (body.get("productGroup") or {}).get("productGroupNumber"), "ProductGroup")
        if errors:
            return self._invalid(errors)
        number = body["productNumber"]
        if number in self.store["products"]:
            return self._error(400, f"Product {number} exists already.")
        item = {**body, "self": f"{self.url}/products/{quote(number, safe='')}"}
        self.store["products"][number] = item
        return item

    # -- documents: totals, due date, create, update ----------------------------------------------------

    def _line_vat_code(self, product_number: str, zone: int) -> tuple[str | None, str | None]:
        """The VAT code a line of this product carries in `zone`, or why there is none to be had."""
        product = self.store["products"].get(product_number)
        if product is None:
            return None, f"Product '{product_number}' not found."
        group = (product.get("productGroup") or {}).get("productGroupNumber")
        account = self.sales_accounts.get(group, {}).get(zone)
        if account is None:
            zone_name = self.resources["vat-zones"][zone]["name"]
            return None, (f"Product group {group} has no sales account for VAT zone {zone} ({zone_name}), "
                          f"so the VAT of product '{product_number}' cannot be determined.")
        return (self.resources["accounts"][account].get("vatAccount") or {}).get("vatCode"), None

    def _totals(self, body: dict, zone: int | None, errors: ValidationErrors) -> tuple[list[Decimal], dict]:
        """Each line's net, and the document's net, VAT (summed and rounded per VAT code) and gross."""
        line_nets: list[Decimal] = []
        net_by_code: dict[str, Decimal] = {}
        for index, line in enumerate(body.get("lines") or []):
            product_number = (line.get("product") or {}).get("productNumber")
            if product_number is not None and line.get("quantity") is None:
                errors.add("quantity", "Property quantity must have a value when product is set.", code="E04730",
                           hint="Please check your request data.", line=index)
            amount = _decimal(line.get("quantity")) * _decimal(line.get("unitNetPrice"))
            net = (amount * (HUNDRED - _decimal(line.get("discountPercentage"))) / HUNDRED).quantize(CENT, rounding=ROUND_HALF_UP)
            line_nets.append(net)
            if product_number is None:
                if net:
                    errors.add("product", "A line with an amount must name a product: its product group gives the line's VAT.",
                               line=index)
                continue
            if zone is None:
                continue
            code, problem = self._line_vat_code(str(product_number), zone)
            if problem:
                errors.add("product", problem, code="E06000" if "not found" in problem else "E04300", value=product_number,
                           hint="Find a list of products at https://restapi.e-conomic.com/products .", line=index)
            elif code is not None:
                net_by_code[code] = net_by_code.get(code, Decimal(0)) + net
        net_total = sum(line_nets, Decimal(0))
        vat = Decimal(0)
        for code, amount in net_by_code.items():
            rate = Decimal(str(self.resources["vat-accounts"][code]["ratePercentage"]))
            vat += (amount * rate / HUNDRED).quantize(CENT, rounding=ROUND_HALF_UP)
        totals = {"netAmount": _money(net_total), "vatAmount": _money(vat), "grossAmount": _money(net_total + vat),
                  "roundingAmount": 0.0}
        return line_nets, totals

    @staticmethod
    def _due_date(body: dict, terms: dict, issued: date | None, errors: ValidationErrors) -> str | None:
        """The sender's dueDate under terms of type dueDate (where it is mandatory), otherwise e-conomic's own."""
        kind = str(terms.get("paymentTermsType") or "").lower()
        if kind == "duedate":
            if not body.get("dueDate"):
                errors.add("dueDate", "dueDate is mandatory when the payment terms are of type dueDate.",
                           hint="Send dueDate, or use payment terms of another type.")
            return body.get("dueDate")
        if issued is None:
            return None
        start = issued
        if kind == "invoicemonth":
            start = issued.replace(day=calendar.monthrange(issued.year, issued.month)[1])
        return (start + timedelta(days=terms.get("daysOfCredit") or 0)).isoformat()

    def _save_document(self, kind: str, body: dict, number: int | None = None):
        """Check a draft invoice or order against the agreement, compute what e-conomic computes, store it."""
        errors = ValidationErrors()
        customer_number = (body.get("customer") or {}).get("customerNumber")
        if customer_number not in self.store["customers"]:
            errors.add("customer", f"Customer '{customer_number}' not found.", code="E06000", value=customer_number,
                       hint="Find a list of customers at https://restapi.e-conomic.com/customers .")
        self._reference(errors, "currencies", "currency", body.get("currency"), "Currency")
        layout = self._reference(errors, "layouts", "layout", (body.get("layout") or {}).get("layoutNumber"), "Layout")
        sent_terms = body.get("paymentTerms") or {}
        terms = self._reference(errors, "payment-terms", "paymentTerms", sent_terms.get("paymentTermsNumber"), "PaymentTerms", "E07080")
        if terms and sent_terms.get("paymentTermsType") not in (None, terms["paymentTermsType"]):
            errors.add("paymentTermsType", "Payment terms type does not match the type on the payment terms specified.",
                       code="E07180", value=sent_terms["paymentTermsType"],
                       hint="Either specify the matching payment terms type for the payment terms in question, or omit the property.")
        recipient = body.get("recipient") or {}
        zone_number = (recipient.get("vatZone") or {}).get("vatZoneNumber")
        zone = self._reference(errors, "vat-zones", "recipient.vatZone", zone_number, "VatZone")
        issued = None
        try:
            issued = date.fromisoformat(body["date"]) if body.get("date") else None
        except ValueError:
            errors.add("date", f"'{body['date']}' is not a valid date.", value=body["date"])
        if body.get("date") is None:
            errors.add("date", "Property date is required.")
        due = self._due_date(body, terms, issued, errors) if terms else None
        line_nets, totals = self._totals(body, zone_number if zone else None, errors)
        if errors:
            return self._invalid(errors)

        if number is None:
            self.numbers[kind] += 1
            number = self.numbers[kind]
        lines = []
        for line, net in zip(body.get("lines") or [], line_nets):
            line = {**line, "totalNetAmount": _money(net)}
            if "product" in line:
                product_number = str(line["product"]["productNumber"])
                line["product"] = {"productNumber": product_number, "self": f"{self.url}/products/{quote(product_number, safe='')}"}
            lines.append(line)
        document = {k: v for k, v in body.items() if k not in ("dueDate", "lines")}
        document.update({
            DOCUMENT_KINDS[kind]: number,
            "customer": {"customerNumber": customer_number, "self": f"{self.url}/customers/{customer_number}"},
            "layout": {"layoutNumber": layout["layoutNumber"], "self": layout["self"]},
            "paymentTerms": {k: terms[k] for k in ("paymentTermsNumber", "daysOfCredit", "name", "paymentTermsType", "self") if k in terms},
            "recipient": {**recipient, "vatZone": zone},
            **totals,
            "self": f"{self.url}/{kind}/{number}",
        })
        if due:
            document["dueDate"] = due
        if lines:
            document["lines"] = lines
        self.store[kind][number] = document
        return document

    def _update_document(self, kind: str, number: int, body) -> Response:
        problems = schema_problems(PUT_SCHEMAS[kind], body)
        if problems:
            return self._error(400, "Validation exception.", {"schema": {"errors": [{"errorMessage": p} for p in problems]}})
        result = self._save_document(kind, body, number)
        return result if isinstance(result, Response) else self._json(result)

    def _book(self, body: dict):
        draft_number = ((body or {}).get("draftInvoice") or {}).get("draftInvoiceNumber")
        draft = self.store["invoices/drafts"].pop(draft_number, None)
        if draft is None:
            return self._error(400, f"Draft invoice {draft_number} does not exist.")
        self.numbers["invoices/booked"] += 1
        number = body.get("bookWithNumber") or self.numbers["invoices/booked"]
        rate = _decimal(draft.get("exchangeRate")) if draft.get("exchangeRate") else self._rate(draft.get("currency"))
        gross = _decimal(draft.get("grossAmount"))
        booked = {**{k: v for k, v in draft.items() if k != "draftInvoiceNumber"}, "bookedInvoiceNumber": number,
                  "exchangeRate": float(rate), "remainder": _money(gross), "remainderInBaseCurrency": _money(gross * rate / HUNDRED),
                  "self": f"{self.url}/invoices/booked/{number}"}
        self.store["invoices/booked"][number] = booked
        self._post_invoice(booked, rate)
        return booked

    # -- ledger postings of booked invoices --------------------------------------------------------------

    def _rate(self, code: str | None) -> Decimal:
        """Base currency for 100 units of `code`."""
        code = (code or self.base_currency).upper()
        if code == self.base_currency:
            return HUNDRED
        return (self.exchange_rates[code] * HUNDRED / self.exchange_rates[self.base_currency]).quantize(Decimal("0.000001"))

    def _receivables_account(self, customer_number: Any) -> int:
        """The debtor account of the customer's group (5600 when the customer has none)."""
        customer = self.store["customers"].get(customer_number) or {}
        group = self.resources["customer-groups"].get((customer.get("customerGroup") or {}).get("customerGroupNumber")) or {}
        return (group.get("account") or {}).get("accountNumber") or 5600

    def _year_of(self, day: str) -> str | None:
        return next((year for year, item in self.accounting_years.items() if item["fromDate"] <= day <= item["toDate"]), None)

    def _post(self, *, year: str | None, voucher: int, account: int, base: Decimal, amount: Decimal, currency: str,
              day: str, text: str, entry_type: str, customer: Any = None, invoice: int | None = None) -> None:
        self.numbers["ledger-entries"] += 1
        self.ledger.append({"entryNumber": self.numbers["ledger-entries"], "year": year, "voucherNumber": voucher,
                            "account": account, "amountInBaseCurrency": base, "amount": amount, "currency": currency,
                            "date": day, "text": text, "entryType": entry_type, "customer": customer, "invoice": invoice})

    def _post_invoice(self, invoice: dict, rate: Decimal) -> None:
        """What booking an invoice does to the ledger: the gross on the customer's debtor account, each line's net
        on its sales account, each VAT code's VAT on its VAT account; base-currency rounding on 1090."""
        def base(amount: Decimal) -> Decimal:
            return (amount * rate / HUNDRED).quantize(CENT, rounding=ROUND_HALF_UP)

        customer = (invoice.get("customer") or {}).get("customerNumber")
        zone = ((invoice.get("recipient") or {}).get("vatZone") or {}).get("vatZoneNumber")
        gross = _decimal(invoice.get("grossAmount"))
        postings = [(self._receivables_account(customer), gross)]
        net_by_code: dict[str, Decimal] = {}
        for line in invoice.get("lines") or []:
            net = _decimal(line.get("totalNetAmount"))
            product = self.store["products"].get(str((line.get("product") or {}).get("productNumber")))
            account = self.sales_accounts.get(((product or {}).get("productGroup") or {}).get("productGroupNumber"), {}).get(zone)
            if not net or account is None:
                continue
            postings.append((account, -net))
            code = (self.resources["accounts"][account].get("vatAccount") or {}).get("vatCode")
            if code:
                net_by_code[code] = net_by_code.get(code, Decimal(0)) + net
        for code, net in net_by_code.items():
            vat_account = self.resources["vat-accounts"][code]
            vat = (net * Decimal(str(vat_account["ratePercentage"])) / HUNDRED).quantize(CENT, rounding=ROUND_HALF_UP)
            postings.append((vat_account["account"]["accountNumber"], -vat))
        entries = [(account, base(amount), amount) for account, amount in postings]
        residue = -sum((entry[1] for entry in entries), Decimal(0))
        if residue:
            entries.append((ROUNDING_ACCOUNT, residue, Decimal(0)))
        day = str(invoice.get("date") or "")
        for account, amount_base, amount in entries:
            self._post(year=self._year_of(day), voucher=invoice["bookedInvoiceNumber"], account=account, base=amount_base,
                       amount=amount, currency=str(invoice.get("currency") or self.base_currency), day=day,
                       text=f"Faktura {invoice['bookedInvoiceNumber']}", entry_type="customerInvoice",
                       customer=customer if account == postings[0][0] else None, invoice=invoice["bookedInvoiceNumber"])

    # -- accounting years, journals and vouchers -------------------------------------------------------

    def add_accounting_year(self, year: str, from_date: date, to_date: date, closed: bool = False) -> dict:
        """An accounting year (`GET /accounting-years/{year}`), named "YYYY" or "YYYY/YYYY"."""
        with self.lock:
            base = f"{self.url}/accounting-years/{year_id(year)}"
            item = {"year": year, "fromDate": from_date.isoformat(), "toDate": to_date.isoformat(), "closed": closed,
                    "entries": f"{base}/entries", "periods": f"{base}/periods", "totals": f"{base}/totals",
                    "vouchers": f"{base}/vouchers", "self": base}
            self.accounting_years[year] = item
            return item

    def add_journal(self, number: int, name: str, *, entry_type_restricted_to: str | None = None,
                    minimum_voucher_number: int = 1, maximum_voucher_number: int = 999999999,
                    contra_accounts: dict[str, int] | None = None) -> dict:
        """A journal ("kassekladde", `GET /journals/{number}`). `entry_type_restricted_to` limits the entries it
        takes to one type; its vouchers are numbered within minimum..maximum. `contra_accounts` (entry array →
        account) are shown as the journal's default contra accounts; the fake does not fill them in."""
        with self.lock:
            if entry_type_restricted_to is not None and entry_type_restricted_to not in ENTRY_KINDS.values():
                raise ValueError(f"{entry_type_restricted_to!r} is not an entry type: {', '.join(ENTRY_KINDS.values())}.")
            base = f"{self.url}/journals/{number}"
            settings: dict = {"voucherNumbers": {"minimumVoucherNumber": minimum_voucher_number,
                                                 "maximumVoucherNumber": maximum_voucher_number}}
            if contra_accounts:
                for kind, account in contra_accounts.items():
                    if kind not in ("customerPayments", "supplierPayments", "financeVouchers"):
                        raise ValueError(f"{kind!r}: journals have default contra accounts for customerPayments, "
                                         "supplierPayments and financeVouchers.")
                    if account not in self.resources["accounts"]:
                        raise ValueError(f"Account {account} is not in the chart; add it with add_account first.")
                settings["contraAccounts"] = {kind: {"accountNumber": account, "self": f"{self.url}/accounts/{account}"}
                                              for kind, account in contra_accounts.items()}
            if entry_type_restricted_to is not None:
                settings["entryTypeRestrictedTo"] = entry_type_restricted_to
            item = {"journalNumber": number, "name": name, "settings": settings, "vouchers": f"{base}/vouchers",
                    "entries": f"{base}/entries",
                    "templates": {"financeVoucher": f"{base}/templates/financeVoucher",
                                  "manualCustomerInvoice": f"{base}/templates/manualCustomerInvoice", "self": f"{base}/templates"},
                    "self": base}
            self.journals[number] = item
            self.journal_vouchers.setdefault(number, {})
            return item

    def set_exchange_rate(self, code: str, dkk_per_100: Decimal | str | int) -> None:
        """What 100 units of `code` cost in DKK, for entries and invoices in that currency."""
        with self.lock:
            self.exchange_rates[code.upper()] = Decimal(str(dkk_per_100))

    def vouchers(self, journal_number: int) -> list[dict]:
        """The vouchers in a journal (not yet booked), as `GET /journals/{n}/vouchers` lists them."""
        with self.lock:
            return [self._voucher_view(record) for _, record in sorted(self.journal_vouchers[journal_number].items())]

    def booked(self) -> list[dict]:
        """Every voucher booked from a journal so far, in the order booked."""
        with self.lock:
            return [json.loads(json.dumps(voucher)) for voucher in self.booked_vouchers.values()]

    def ledger_entries(self, account: int | None = None) -> list[dict]:
        """Booked entries (invoices and journal vouchers), amounts as Decimal, optionally of one account."""
        with self.lock:
            return [dict(entry) for entry in self.ledger if account is None or entry["account"] == account]

    def account_balance(self, number: int, *, include_journals: bool = False) -> Decimal:
        """An account's balance in base currency, debit positive (e-conomic's `balance`); with `include_journals`
        also what sits unbooked in journals (e-conomic's `draftBalance`)."""
        with self.lock:
            total = sum((entry["amountInBaseCurrency"] for entry in self.ledger if entry["account"] == number), Decimal(0))
            if include_journals:
                for records in self.journal_vouchers.values():
                    for record in records.values():
                        for entry in record["entries"]:
                            total += sum((p[1] for p in entry["postings"] if p[0] == number), Decimal(0))
            return total

    def book_journal(self, journal_number: int) -> list[dict]:
        """What an accountant's "Book" does: every voucher in the journal moves to the ledger. Refused, booking
        nothing, when a voucher does not balance (entries can be deleted after posting). A customer payment that
        names a booked invoice (`customerInvoice`) settles that invoice's `remainder`."""
        with self.lock:
            records = [record for _, record in sorted(self.journal_vouchers[journal_number].items())]
            problems = []
            for record in records:
                total = sum((p[1] for entry in record["entries"] for p in entry["postings"]), Decimal(0))
                if total:
                    problems.append(f"voucher {record['number']} ({record['year']}) is off by {total} {self.base_currency}")
                if self.accounting_years[record["year"]]["closed"]:
                    problems.append(f"accounting year {record['year']} of voucher {record['number']} is closed")
            if problems:
                raise ValueError(f"Journal {journal_number} cannot be booked: " + "; ".join(problems) + ".")
            done = []
            for record in records:
                for entry in record["entries"]:
                    customer = entry.get("customer")
                    debtor = self._receivables_account(customer) if customer is not None else None
                    for account, base, amount in entry["postings"]:
                        mine = account == debtor
                        self._post(year=record["year"], voucher=record["number"], account=account, base=base, amount=amount,
                                   currency=entry["currency"], day=entry["date"], text=entry["echo"].get("text", ""),
                                   entry_type=entry["type"], invoice=entry.get("invoice") if mine else None,
                                   customer=customer if mine else None)
                    if entry["type"] == "customerPayment" and entry.get("invoice") is not None:
                        self._settle(entry)
                view = self._voucher_view(record)
                self.booked_vouchers[(record["year"], record["number"])] = view
                done.append(view)
            self.journal_vouchers[journal_number].clear()
            return done

    def _settle(self, entry: dict) -> None:
        """A booked customer payment against a booked invoice: the remainder moves by the payment (a payment is a
        credit, a negative amount), never past zero or past the invoice's gross amount."""
        invoice = self.store["invoices/booked"][entry["invoice"]]
        rate = _decimal(invoice.get("exchangeRate"), "100")
        if entry["currency"] == str(invoice.get("currency") or self.base_currency).upper():
            delta = entry["amount"]
        else:
            delta = (entry["base"] * HUNDRED / rate).quantize(CENT, rounding=ROUND_HALF_UP)
        gross = _decimal(invoice.get("grossAmount"))
        gross_base = (gross * rate / HUNDRED).quantize(CENT, rounding=ROUND_HALF_UP)

        def clamp(value: Decimal, limit: Decimal) -> Decimal:
            low, high = sorted((Decimal(0), limit))
            return min(max(value, low), high)

        remainder = clamp(_decimal(invoice.get("remainder")) + delta, gross)
        remainder_base = clamp(_decimal(invoice.get("remainderInBaseCurrency")) + entry["base"], gross_base)
        invoice["remainder"] = _money(remainder)
        invoice["remainderInBaseCurrency"] = _money(remainder_base if remainder else Decimal(0))

    # -- POST /journals/{n}/vouchers ---------------------------------------------------------------------

    def _create_vouchers(self, journal_number: int, body) -> list[dict] | Response:
        """One voucher object, or an array of them (bulk): all are checked before any is made; the answer is
        always an array of the vouchers made, each with its number."""
        journal = self.journals[journal_number]
        bulk = isinstance(body, list)
        vouchers = body if bulk else [body]
        if bulk and not vouchers:
            return self._error(400, "The body is an empty array; send a voucher or an array of vouchers.")
        errors = ValidationErrors()
        reserved: dict[str, set[int]] = {}
        plans = [self._plan_voucher(journal, voucher, [index] if bulk else [], errors, reserved)
                 for index, voucher in enumerate(vouchers)]
        if errors:
            return self._invalid(errors)
        return [self._voucher_view(self._store_voucher(journal_number, plan)) for plan in plans]

    @staticmethod
    def _schema_issues(schema: dict, body: Any) -> list[tuple[list, str]]:
        """Where `body` breaks the schema or e-conomic's own rules (no nulls, maxDecimal, full-date), as paths."""
        issues = []
        for error in jsonschema.Draft3Validator(schema).iter_errors(body):
            path = list(error.path)
            if error.validator == "type" and error.instance is None:
                continue  # said once, below, as "null is not allowed"
            if error.validator == "pattern" and error.schema.get("format") == "full-date":
                continue  # said once, below, as not a date
            if error.validator == "required":
                issues.append((path, f"Property {path[-1]} is required."))
            else:
                issues.append((path or ["voucher"], error.message))

        def walk(value, rule, path):
            if value is None:
                issues.append((path, f"Property {path[-1]} is null; leave it out instead."))
            elif isinstance(value, dict):
                for key, item in value.items():
                    walk(item, (rule.get("properties") or {}).get(key, {}), [*path, key])
            elif isinstance(value, list):
                for index, item in enumerate(value):
                    walk(item, rule.get("items") or {}, [*path, index])
            else:
                if "maxDecimal" in rule and isinstance(value, (int, float)) and not isinstance(value, bool):
                    if -Decimal(str(value)).normalize().as_tuple().exponent > rule["maxDecimal"]:
                        issues.append((path, f"Property {path[-1]} takes at most {rule['maxDecimal']} decimals ({value})."))
                if rule.get("format") == "full-date" and not re.fullmatch(r"\d{4}-\d{2}-\d{2}", str(value)):
                    issues.append((path, f"Property {path[-1]} is not a date in the format YYYY-MM-DD."))

        walk(body, schema, [])
        return issues

    def _account_check(self, errors: ValidationErrors, parts: list, ref: Any) -> int | None:
        """The number of the account `ref` names, when that account exists and takes entries."""
        number = ref.get("accountNumber") if isinstance(ref, dict) else None
        account = self.resources["accounts"].get(number)
        hint = "Find a list of accounts at https://restapi.e-conomic.com/accounts ."
        if number is None:
            errors.add_at(parts, f"Property {parts[-1]}.accountNumber is required.", hint=hint)
        elif account is None:
            errors.add_at(parts, f"Account '{number}' not found.", code="E06000", value=number, hint=hint)
        elif account["accountType"] not in POSTABLE_ACCOUNT_TYPES:
            errors.add_at(parts, f"Account {number} ({account['name']}) is of type {account['accountType']} and cannot "
                          "take entries.", value=number, hint="Post to an account of type profitAndLoss or status.")
        elif account.get("blockDirectEntries"):
            errors.add_at(parts, f"Account {number} ({account['name']}) is blocked for direct entries.", value=number)
        elif account.get("barred"):
            errors.add_at(parts, f"Account {number} ({account['name']}) is barred.", value=number)
        else:
            return number
        return None

    def _vat_check(self, errors: ValidationErrors, parts: list, ref: Any) -> dict | None:
        code = ref.get("vatCode") if isinstance(ref, dict) else None
        item = self.resources["vat-accounts"].get(code)
        if item is None:
            errors.add_at(parts, f"VatAccount '{code}' not found.", code="E06000", value=code,
                          hint="Find a list of VAT accounts at https://restapi.e-conomic.com/vat-accounts .")
        return item

    @staticmethod
    def _vat_part(amount: Decimal, vat_account: dict | None) -> Decimal:
        """The VAT inside a gross `amount` at the VAT code's rate."""
        if vat_account is None:
            return Decimal(0)
        rate = Decimal(str(vat_account["ratePercentage"]))
        return (amount * rate / (HUNDRED + rate)).quantize(CENT, rounding=ROUND_HALF_UP)

    def _plan_voucher(self, journal: dict, voucher: Any, prefix: list, errors: ValidationErrors,
                      reserved: dict[str, set[int]]) -> dict | None:
        journal_number = journal["journalNumber"]
        before = errors.count
        issues = self._schema_issues(json.loads((SCHEMAS / VOUCHER_SCHEMA).read_text()), voucher)
        for path, message in issues:
            errors.add_at([*prefix, *path], message)
        if issues or not isinstance(voucher, dict):
            return None

        year_ref = voucher.get("accountingYear") or {}
        name = year_ref.get("year")
        if name is None and year_ref.get("self"):
            name = str(year_ref["self"]).rstrip("/").rsplit("/", 1)[-1].replace("_6_", "/")
        year = self.accounting_years.get(name)
        if year is None:
            errors.add_at([*prefix, "accountingYear"], f"Accounting year '{name}' not found." if name else
                          "Property accountingYear.year is required.", code="E06000", value=name,
                          hint="Find a list of accounting years at https://restapi.e-conomic.com/accounting-years .")
        elif year["closed"]:
            errors.add_at([*prefix, "accountingYear"], f"Accounting year {name} is closed for further transactions.", value=name)
        named_journal = (voucher.get("journal") or {}).get("journalNumber")
        if named_journal is not None and named_journal != journal_number:
            errors.add_at([*prefix, "journal"], f"The voucher names journal {named_journal:g} but is posted to journal "
                          f"{journal_number}.", value=named_journal)

        entries = []
        given = voucher.get("entries") or {}
        for kind, entry_type in ENTRY_KINDS.items():
            for index, entry in enumerate(given.get(kind) or []):
                planned = self._plan_entry(journal, year, kind, entry_type, entry, [*prefix, "entries", kind, index], errors)
                if planned:
                    entries.append(planned)
        if not any(given.get(kind) for kind in ENTRY_KINDS):
            errors.add_at([*prefix, "entries"], "A voucher needs at least one entry (financeVouchers, customerPayments, "
                          "manualCustomerInvoices, supplierInvoices or supplierPayments).")

        number = None
        if year is not None:
            settings = journal["settings"]["voucherNumbers"]
            low, high = max(settings["minimumVoucherNumber"], 1), settings["maximumVoucherNumber"]
            taken = self._voucher_numbers(name) | reserved.setdefault(name, set())
            wanted = voucher.get("voucherNumber")
            if wanted is not None:
                if wanted != int(wanted):
                    errors.add_at([*prefix, "voucherNumber"], "Property voucherNumber is a whole number.", value=wanted)
                elif not low <= int(wanted) <= high:
                    errors.add_at([*prefix, "voucherNumber"], f"Voucher number {int(wanted)} is outside journal "
                                  f"{journal_number}'s number series ({low}-{high}).", value=wanted)
                elif int(wanted) in taken:
                    errors.add_at([*prefix, "voucherNumber"], f"Voucher number {int(wanted)} is already used in "
                                  f"accounting year {name}.", value=wanted)
                else:
                    number = int(wanted)
            else:
                number = max((n for n in taken if low <= n <= high), default=low - 1) + 1
                if number > high:
                    errors.add_at([*prefix, "voucherNumber"], f"Journal {journal_number} has no voucher numbers left in "
                                  f"its number series ({low}-{high}).")
                    number = None
            if number is not None:
                reserved[name].add(number)

        if errors.count == before:
            total = sum((p[1] for entry in entries for p in entry["postings"]), Decimal(0))
            if total:
                errors.add_at([*prefix, "entries"], f"The voucher does not balance: its entries add up to {total} "
                              f"{self.base_currency}, not 0.", hint="Give each entry a contraAccount, or add entries that "
                              "bring the voucher's sum to 0.")
        if errors.count != before:
            return None
        return {"year": name, "number": number, "entries": entries}

    def _plan_entry(self, journal: dict, year: dict | None, kind: str, entry_type: str, entry: dict, parts: list,
                    errors: ValidationErrors) -> dict | None:
        before = errors.count
        restricted = journal["settings"].get("entryTypeRestrictedTo")
        if restricted and restricted != entry_type:
            errors.add_at([*parts, "entryType"], f"Journal {journal['journalNumber']} takes only entries of type "
                          f"{restricted}, not {entry_type}.", value=entry_type)
        named_journal = (entry.get("journal") or {}).get("journalNumber")
        if named_journal is not None and named_journal != journal["journalNumber"]:
            errors.add_at([*parts, "journal"], f"The entry names journal {named_journal:g} but is posted to journal "
                          f"{journal['journalNumber']}.", value=named_journal)
        day = None
        try:
            day = date.fromisoformat(entry["date"])
        except ValueError:
            errors.add_at([*parts, "date"], f"'{entry['date']}' is not a valid date.", value=entry["date"])
        if day is not None and year is not None and not year["fromDate"] <= day.isoformat() <= year["toDate"]:
            errors.add_at([*parts, "date"], f"Date {day.isoformat()} is not within accounting year {year['year']} "
                          f"({year['fromDate']} - {year['toDate']}).", value=entry["date"],
                          hint="Use the accounting year whose fromDate..toDate holds the entry's date (GET /accounting-years).")

        currency = str((entry.get("currency") or {}).get("code") or self.base_currency).upper()
        if currency not in self.resources["currencies"]:
            errors.add_at([*parts, "currency"], f"Currency '{currency}' not found.", code="E06000", value=currency,
                          hint="Find a list of currencies at https://restapi.e-conomic.com/currencies .")

        account = vat = None
        if kind == "financeVouchers":
            if entry.get("account") is not None:
                account = self._account_check(errors, [*parts, "account"], entry["account"])
            elif entry.get("contraAccount") is None:
                errors.add_at([*parts, "account"], "Either 'account' or 'contraAccount' is required.")
            if entry.get("vatAccount") is not None:
                if entry.get("account") is None:
                    errors.add_at([*parts, "vatAccount"], "vatAccount applies to the entry's account; it has none.")
                vat = self._vat_check(errors, [*parts, "vatAccount"], entry["vatAccount"])
        contra = contra_vat = None
        if entry.get("contraAccount") is not None:
            contra = self._account_check(errors, [*parts, "contraAccount"], entry["contraAccount"])
        if entry.get("contraVatAccount") is not None:
            if entry.get("contraAccount") is None:
                errors.add_at([*parts, "contraVatAccount"], "contraVatAccount applies to the entry's contraAccount; it has none.")
            contra_vat = self._vat_check(errors, [*parts, "contraVatAccount"], entry["contraVatAccount"])

        customer = invoice = None
        if kind in ("customerPayments", "manualCustomerInvoices"):
            customer = (entry.get("customer") or {}).get("customerNumber")
            if entry.get("customer") is None and entry.get("contraAccount") is None:
                errors.add_at([*parts, "customer"], "Either 'customer' or 'contraAccount' is required.")
            elif entry.get("customer") is not None and customer not in self.store["customers"]:
                errors.add_at([*parts, "customer"], f"Customer '{customer}' not found.", code="E06000", value=customer,
                              hint="Find a list of customers at https://restapi.e-conomic.com/customers .")
            if kind == "customerPayments" and entry.get("customerInvoice") is not None:
                invoice = entry["customerInvoice"]
                booked = self.store["invoices/booked"].get(invoice)
                owner = ((booked or {}).get("customer") or {}).get("customerNumber")
                if entry.get("customer") is None:
                    errors.add_at([*parts, "customerInvoice"], f"customerInvoice {invoice} needs the entry's customer.",
                                  value=invoice)
                elif booked is None:
                    errors.add_at([*parts, "customerInvoice"], f"Booked invoice '{invoice}' not found.", code="E06000",
                                  value=invoice, hint="Find a list of booked invoices at https://restapi.e-conomic.com/invoices/booked .")
                elif owner != customer:
                    errors.add_at([*parts, "customerInvoice"], f"Booked invoice {invoice} belongs to customer {owner}, "
                                  f"not to customer {customer}.", value=invoice)
        if kind in ("supplierInvoices", "supplierPayments"):
            supplier = (entry.get("supplier") or {}).get("supplierNumber")
            if entry.get("supplier") is None and entry.get("contraAccount") is None:
                errors.add_at([*parts, "supplier"], "Either 'supplier' or 'contraAccount' is required.")
            elif entry.get("supplier") is not None:  # the fake keeps no suppliers
                errors.add_at([*parts, "supplier"], f"Supplier '{supplier}' not found.", code="E06000", value=supplier)
        if errors.count != before:
            return None

        amount = _decimal(entry["amount"])
        rate = HUNDRED if currency == self.base_currency else (
            _decimal(entry["exchangeRate"]) if entry.get("exchangeRate") is not None else self._rate(currency))
        base = (_decimal(entry["amountBaseCurrency"]) if entry.get("amountBaseCurrency") is not None
                else (amount * rate / HUNDRED).quantize(CENT, rounding=ROUND_HALF_UP))
        own = self._receivables_account(customer) if customer is not None else account
        postings = []  # (account, base-currency amount, entry-currency amount), debit positive
        vat_amount, vat_base = self._vat_part(amount, vat), self._vat_part(base, vat)
        if own is not None:
            postings.append((own, base - vat_base, amount - vat_amount))
            if vat is not None:
                postings.append((vat["account"]["accountNumber"], vat_base, vat_amount))
        contra_vat_amount, contra_vat_base = self._vat_part(amount, contra_vat), self._vat_part(base, contra_vat)
        if contra is not None:
            postings.append((contra, -(base - contra_vat_base), -(amount - contra_vat_amount)))
            if contra_vat is not None:
                postings.append((contra_vat["account"]["accountNumber"], -contra_vat_base, -contra_vat_amount))

        echo = {k: v for k, v in entry.items() if k not in ("voucher", "journal", "entryType", "remainder",
                                                            "remainderInDefaultCurrency")}
        echo.update(amount=_money(amount), amountBaseCurrency=_money(base), currency={"code": currency,
                    "self": f"{self.url}/currencies/{currency}"}, date=day.isoformat())
        if currency != self.base_currency:
            echo["exchangeRate"] = float(rate)
        for field, number in (("account", account), ("contraAccount", contra)):
            if number is not None:
                echo[field] = {"accountNumber": number, "self": f"{self.url}/accounts/{number}"}
        if customer is not None:
            echo["customer"] = {"customerNumber": customer, "self": f"{self.url}/customers/{customer}"}
        if vat is not None:
            echo.update(vatAccount={"vatCode": vat["vatCode"], "self": vat["self"]}, vatAmount=_money(vat_amount),
                        vatAmountBaseCurrency=_money(vat_base))
        if contra_vat is not None:
            echo.update(contraVatAccount={"vatCode": contra_vat["vatCode"], "self": contra_vat["self"]},
                        contraVatAmount=_money(contra_vat_amount), contraVatAmountInBaseCurrency=_money(contra_vat_base))
        return {"kind": kind, "type": entry_type, "date": day.isoformat(), "amount": amount, "base": base,
                "currency": currency, "customer": customer, "invoice": invoice, "postings": postings, "echo": echo}

    def _voucher_numbers(self, year: str) -> set[int]:
        """Voucher numbers used in an accounting year, in any journal or booked."""
        used = {number for (y, number) in self.booked_vouchers if y == year}
        for records in self.journal_vouchers.values():
            used |= {number for (y, number) in records if y == year}
        return used

    def _store_voucher(self, journal_number: int, plan: dict) -> dict:
        record = {"journal": journal_number, "year": plan["year"], "number": plan["number"], "entries": []}
        for entry in plan["entries"]:
            self.numbers["journal-entries"] += 1
            record["entries"].append({**entry, "journalEntryNumber": self.numbers["journal-entries"]})
        self.journal_vouchers[journal_number][(plan["year"], plan["number"])] = record
        return record

    def _voucher_self(self, record: dict) -> str:
        return f"{self.url}/journals/{record['journal']}/vouchers/{year_id(record['year'])}-{record['number']}"

    def _voucher_view(self, record: dict) -> dict:
        """A voucher as e-conomic shows it: its entries by type, each with its entryType, journal and voucher."""
        journal = {"journalNumber": record["journal"], "self": f"{self.url}/journals/{record['journal']}"}
        own = self._voucher_self(record)
        entries: dict[str, list] = {}
        for entry in record["entries"]:
            entries.setdefault(entry["kind"], []).append(
                {**json.loads(json.dumps(entry["echo"])), "entryType": entry["type"], "journal": journal,
                 "voucher": {"voucherNumber": record["number"], "self": own}})
        return {"accountingYear": {"year": record["year"], "self": f"{self.url}/accounting-years/{year_id(record['year'])}"},
                "journal": journal, "entries": entries, "voucherNumber": record["number"],
                "attachment": f"{own}/attachment", "self": own}

    def _entry_views(self, journal_number: int) -> list[dict]:
        """A journal's entries (`GET /journals/{n}/entries`), sorted by entry type, then as entered."""
        order = list(ENTRY_KINDS.values())
        views = []
        for record in self.journal_vouchers[journal_number].values():
            voucher = self._voucher_view(record)
            for entry in record["entries"]:
                echo = json.loads(json.dumps(entry["echo"]))
                echo["amountDefaultCurrency"] = echo.pop("amountBaseCurrency")
                views.append((order.index(entry["type"]), entry["journalEntryNumber"], {
                    **echo, "entryType": entry["type"], "journal": voucher["journal"],
                    "journalEntryNumber": entry["journalEntryNumber"],
                    "voucher": {"voucherNumber": record["number"], "accountingYear": voucher["accountingYear"],
                                "self": voucher["self"]},
                    "self": f"{self.url}/journals/{journal_number}/entries/{entry['journalEntryNumber']}"}))
        return [view for *_, view in sorted(views, key=lambda v: (v[0], v[1]))]

    def _year_entry_views(self, year: str) -> list[dict]:
        """Booked entries of an accounting year (`GET /accounting-years/{year}/entries`)."""
        views = []
        for entry in self.ledger:
            if entry["year"] != year:
                continue
            view = {"account": {"accountNumber": entry["account"], "self": f"{self.url}/accounts/{entry['account']}"},
                    "amount": _money(entry["amount"]), "amountInBaseCurrency": _money(entry["amountInBaseCurrency"]),
                    "currency": entry["currency"], "date": entry["date"], "entryNumber": entry["entryNumber"],
                    "entryType": entry["entryType"], "text": entry["text"], "voucherNumber": entry["voucherNumber"],
                    "self": f"{self.url}/accounting-years/{year_id(year)}/entries/{entry['entryNumber']}"}
            if entry["customer"] is not None:
                view["customer"] = {"customerNumber": entry["customer"], "self": f"{self.url}/customers/{entry['customer']}"}
            if entry["invoice"] is not None:
                view["bookedInvoice"] = {"bookedInvoiceNumber": entry["invoice"],
                                         "self": f"{self.url}/invoices/booked/{entry['invoice']}"}
            views.append(view)
        return views

    def _account_view(self, item: dict) -> dict:
        number = item["accountNumber"]
        return {**item, "balance": _money(self.account_balance(number)),
                "draftBalance": _money(self.account_balance(number, include_journals=True))}

    def _route_ledger(self, request: Request, body, parts: list[str]) -> Response | None:
        """GET/POST/DELETE under /journals, /accounting-years and /accounts; None for any other path."""
        method = request.method
        with self.lock:
            if parts[0] == "accounts" and method == "GET":
                if len(parts) == 1:
                    items = [self._account_view(item) for _, item in sorted(self.resources["accounts"].items())]
                    return self._collection(request, items, FILTERABLE["accounts"])
                number = int(parts[1]) if parts[1].isdigit() else None
                if len(parts) == 2 and number in self.resources["accounts"]:
                    return self._json(self._account_view(self.resources["accounts"][number]))
                return self._error(404, f"No accounts {'/'.join(parts[1:])}.")
            if parts[0] == "accounting-years" and method == "GET":
                if len(parts) == 1:
                    items = sorted(self.accounting_years.values(), key=lambda item: item["fromDate"])
                    return self._collection(request, items, FILTERABLE["accounting-years"])
                year = self.accounting_years.get(parts[1].replace("_6_", "/"))
                if year is None or len(parts) > 3 or (len(parts) == 3 and parts[2] != "entries"):
                    return self._error(404, f"No accounting-years {'/'.join(parts[1:])}.")
                if len(parts) == 3:
                    return self._collection(request, self._year_entry_views(year["year"]), FILTERABLE["year-entries"])
                return self._json(year)
            if parts[0] != "journals":
                return None
            if len(parts) == 1 and method == "GET":
                return self._collection(request, [item for _, item in sorted(self.journals.items())], FILTERABLE["journals"])
            number = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None
            if number not in self.journals:
                return self._error(404, f"Journal '{parts[1] if len(parts) > 1 else ''}' not found.", error_code="E06000",
                                   hint="Find a list of journals at https://restapi.e-conomic.com/journals .")
            if len(parts) == 2 and method == "GET":
                return self._json(self.journals[number])
            if len(parts) == 3 and parts[2] == "vouchers":
                if method == "GET":
                    return self._collection(request, self.vouchers(number), FILTERABLE["journal-vouchers"])
                if method == "POST":
                    return self._create("/".join(parts), request, body, lambda sent: self._create_vouchers(number, sent))
            if len(parts) == 4 and parts[2] == "vouchers" and method == "GET":
                year, _, voucher = parts[3].rpartition("-")
                record = self.journal_vouchers[number].get((year.replace("_6_", "/"), int(voucher) if voucher.isdigit() else None))
                if record is None:
                    return self._error(404, f"Voucher '{parts[3]}' not found in journal {number}.", error_code="E06000")
                return self._json(self._voucher_view(record))
            if len(parts) == 3 and parts[2] == "entries" and method == "GET":
                return self._collection(request, self._entry_views(number), FILTERABLE["journal-entries"])
            if len(parts) == 4 and parts[2] == "entries" and method == "DELETE":
                for key, record in list(self.journal_vouchers[number].items()):
                    kept = [e for e in record["entries"] if str(e["journalEntryNumber"]) != parts[3]]
                    if len(kept) != len(record["entries"]):
                        record["entries"] = kept
                        if not kept:
                            del self.journal_vouchers[number][key]
                        return Response(b"", status=204)
                return self._error(404, f"Entry '{parts[3]}' not found in journal {number}.", error_code="E06000")
        return self._error(404 if method == "GET" else 405, f"{method} /{'/'.join(parts)} is not served by the fake.")
