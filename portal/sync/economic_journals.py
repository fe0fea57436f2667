"""e-conomic journals ("kassekladder") and vouchers: how payments, refunds, fees and payouts reach the books.

Built on `EconomicClient` (portal/sync/economic.py). What e-conomic's REST API does here, per its reference
(restdocs, the e-conomic/slate sources) and integrations in production:
- `POST /journals/{n}/vouchers` takes one voucher object (bulk: an array of them) and answers with an array
  of the vouchers made, each with its `voucherNumber` and `accountingYear`. Entries sit in the journal until
  someone books it; an `Idempotency-Key` makes a retry replay the first answer.
- `GET /journals/{n}/vouchers` filters on nothing; `GET /journals/{n}/entries` filters on `text` (among
  others), so finding what an earlier attempt made goes through the entries.
- Each entry's `date` must lie in the voucher's accounting year, named "YYYY" or "YYYY/YYYY" ("/" is
  written "_6_" in a URL). Amounts carry at most 2 decimals.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from .economic import EconomicClient, EconomicError

POSTABLE_ACCOUNT_TYPES = ("profitAndLoss", "status")  # headings and totals take no entries
FILTER_SPECIAL = "$(),*[]"  # characters e-conomic's filter syntax wants escaped with "$"


@dataclass(frozen=True)
class Journal:
    number: int
    name: str
    entry_type_restricted_to: str | None = None  # e.g. "customerPayment"; None takes every type


@dataclass(frozen=True)
class Account:
    number: int
    name: str
    type: str  # profitAndLoss, status, heading, headingStart, sumInterval, sumAlpha, totalFrom
    accepts_entries: bool
    vat_code: str | None = None


def filter_escape(text: str) -> str:
    """`text` as a literal value in a `filter=` expression."""
    return "".join(f"${char}" if char in FILTER_SPECIAL else char for char in text)


def year_in_url(year: str) -> str:
    """An accounting year as a URL segment: "2025/2026" is "2025_6_2026"."""
    return year.replace("/", "_6_")


def journals_list(client: EconomicClient) -> list[Journal]:
    """Every journal on the agreement (`GET /journals`)."""
    return [Journal(number=item["journalNumber"], name=item.get("name", ""),
                    entry_type_restricted_to=(item.get("settings") or {}).get("entryTypeRestrictedTo"))
            for item in client.list_all("/journals")]


def accounts_list(client: EconomicClient) -> list[Account]:
    """The chart of accounts (`GET /accounts`), with whether each account can take entries."""
    accounts = []
    for item in client.list_all("/accounts"):
        kind = item.get("accountType", "")
        accepts = kind in POSTABLE_ACCOUNT_TYPES and not item.get("blockDirectEntries") and not item.get("barred")
        accounts.append(Account(number=item["accountNumber"], name=item.get("name", ""), type=kind, accepts_entries=accepts,
                                vat_code=(item.get("vatAccount") or {}).get("vatCode")))
    return accounts


def voucher_post(client: EconomicClient, journal_number: int, voucher: dict, idempotency_key: str) -> dict:
    """Create one voucher in a journal; returns it as e-conomic made it, with `voucherNumber` and
    `accountingYear`. Amounts may be `Decimal` (sent exactly). A refusal raises `EconomicError` whose
    `field_errors` name the failing fields (e.g. "entries.financeVouchers.items[0].account")."""
    answer = client.request("POST", f"/journals/{journal_number}/vouchers", json=voucher, idempotency_key=idempotency_key)
    made = answer[0] if isinstance(answer, list) and answer else answer
    if not isinstance(made, dict) or "voucherNumber" not in made:
        raise EconomicError(f"e-conomic answered a voucher POST with something unexpected: {answer!r:.200}", transient=False)
    return made


def journal_vouchers_find(client: EconomicClient, journal_number: int, text_contains: str) -> list[dict]:
    """The vouchers in a journal with an entry whose text contains `text_contains` (case-insensitively, as
    e-conomic's `$like:` matches), each read in full. Only what is still in the journal: once the journal is
    booked its vouchers are in the accounting year's entries (`GET /accounting-years/{year}/entries`)."""
    if not text_contains:
        raise ValueError("Give some text to look for; an empty text matches every entry.")
    entries = client.list_all(f"/journals/{journal_number}/entries",
                              params={"filter": f"text$like:{filter_escape(text_contains)}"})
    keys: list[tuple[str, int]] = []
    for entry in entries:
        voucher = entry.get("voucher") or {}
        key = ((voucher.get("accountingYear") or {}).get("year"), voucher.get("voucherNumber"))
        if None not in key and key not in keys:
            keys.append(key)
    return [client.request("GET", f"/journals/{journal_number}/vouchers/{year_in_url(year)}-{number}")
            for year, number in keys]


def accounting_year_for(client: EconomicClient, day: date) -> str:
    """The accounting year ("2026", "2025/2026") whose fromDate..toDate holds `day`; LookupError if none does.
    A closed year is returned too; e-conomic refuses vouchers in it."""
    wanted = day.isoformat()
    for year in client.list_all("/accounting-years"):
        if str(year.get("fromDate")) <= wanted <= str(year.get("toDate")):
            return str(year["year"])
    raise LookupError(f"No accounting year in e-conomic holds {wanted}; the accountant has to create it first.")
