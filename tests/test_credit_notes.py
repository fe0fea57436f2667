"""A Stripe credit note becomes an e-conomic credit note: the sync engine, driven through `credit_note_as_invoice`,
against the fake Stripe (which issues credit notes as Stripe does: tax per line, rounded half up) and the fake
e-conomic (which computes VAT itself). Each case checks what an accountant would: the credit note's net, VAT and
gross against the original invoice's, its lines, its reference to the invoice, or the reason it was held.
"""

from __future__ import annotations

import itertools
from decimal import Decimal

import pytest

from doubles.economic import FakeEconomic
from doubles.stripe import FakeStripe
from portal.sync.credit_notes import credit_note_as_invoice, fetch_credit_note
from portal.sync.economic import EconomicClient
from portal.sync.engine import RunState, SyncEngine, SyncFailure, SyncHeld
from portal.sync.stripe_source import stripe_client
from portal.sync.vat import VatChoice

from .engine_support import MemoryRecorder
from .test_books_match_stripe import DE19, DK25, Case, line, stripe_invoice

AT = 1795000000  # 2026-11-18, two days after the invoices' date of issue
INVOICE_NUMBER = "KYSTLYS1-0007"
CN_NUMBER = "KYSTLYS1-0007-CN-01"
runs = itertools.count(5001)


@pytest.fixture
def case():
    with FakeStripe() as stripe_double, FakeEconomic() as economic:
        yield Case(stripe_double, economic)


def client_for(case: Case):
    return stripe_client("sk_test_fake", case.stripe.url, max_network_retries=0)


def sync(case: Case, credit_note_id: str, state: RunState | None = None, *, credit_note: dict | None = None,
         fetched: bool = True, client=None, **settings):
    """(outcome or SyncHeld/SyncFailure, recorder): the engine's run of the credit note, as a job would make it:
    read with `fetch_credit_note`, adapted with `credit_note_as_invoice` (or, `fetched=False`, left to the engine)."""
    client = client or client_for(case)
    invoice = None
    if fetched:
        invoice = credit_note_as_invoice(credit_note or fetch_credit_note(client, credit_note_id))
    recorder = MemoryRecorder()
    engine = SyncEngine(client, EconomicClient("app", "grant", case.economic.url), case.settings(**settings), recorder,
                        case.links)
    state = state or RunState(run_id=next(runs), stripe_invoice_id=credit_note_id, attempt=1)
    try:
        return engine.run(state, invoice), recorder
    except (SyncHeld, SyncFailure) as stopped:
        return stopped, recorder


def booked_original(case: Case, invoice: dict, **settings) -> dict:
    outcome, _ = case.run(invoice, **settings)
    assert outcome.reconciled, outcome
    [booked] = case.booked()
    return booked


def by_reference(case: Case, kind: str, reference: str) -> list[dict]:
    return [d for d in case.economic.documents(kind) if (d.get("references") or {}).get("other") == reference]


def lines_of(document: dict) -> list[tuple]:
    return [((l.get("product") or {}).get("productNumber"), l["quantity"], l["unitNetPrice"]) for l in document["lines"]]


def test_a_full_credit_note_books_exactly_minus_the_invoice_referencing_it(case):
    invoice = stripe_invoice([line("prod_hours", 712500, "7.5"), line("prod_setup", 149500)])
    original = booked_original(case, invoice)
    note = case.stripe.add_credit_note(invoice["id"], reason="order_change", memo="Workshop cancelled.", at=AT)
    assert (note["number"], note["total"], note["total_excluding_tax"]) == (CN_NUMBER, 1077500, 862000)

    outcome, recorder = sync(case, note["id"])

    [credit] = by_reference(case, "invoices/booked", CN_NUMBER)
    assert case.totals(original) == ("8620.00", "2155.00", "10775.00")
    assert case.totals(credit) == ("-8620.00", "-2155.00", "-10775.00")
    assert outcome.reconciled and outcome.document_type == "booked_invoice"
    assert outcome.document_number == credit["bookedInvoiceNumber"] != original["bookedInvoiceNumber"]
    assert outcome.totals["stripe"] == {"net": "-8620.00", "vat": "-2155.00", "gross": "-10775.00"}
    # Each credited line at its price with a negative quantity, on the invoice's own products.
    assert lines_of(credit) == [("prod_hours", -7.5, 950), ("prod_setup", -1, 1495)]
    assert credit["notes"]["heading"] == f"Credit note {CN_NUMBER} for invoice {INVOICE_NUMBER}"
    assert credit["notes"]["textLine1"] == f"Credit note {CN_NUMBER} for invoice {INVOICE_NUMBER} (order change).\nWorkshop cancelled."
    assert credit["date"] == "2026-11-18" and credit["dueDate"] == "2026-12-02"  # Net 14 days from the credit note's date
    assert credit["customer"] == original["customer"] and credit["recipient"]["vatZone"]["vatZoneNumber"] == 1
    assert len(case.economic.store["customers"]) == 1 and len(case.economic.posts("/products")) == 2  # none made again
    assert recorder.fields["stripe_invoice_number"] == CN_NUMBER and recorder.fields["total_minor"] == -1077500
    # In the ledger the credit note undoes the invoice: debtors, sales and output VAT are back at zero.
    for account in (5600, 1010, 14261):
        assert sum(e["amount"] for e in case.economic.ledger_entries(account)) == 0


def test_a_partial_credit_note_credits_one_line_by_quantity_and_another_by_amount(case):
    invoice = stripe_invoice([line("prod_hours", 712500, "7.5"), line("prod_setup", 149500)])
    booked_original(case, invoice)
    hours, setup = invoice["lines"]["data"]
    note = case.stripe.add_credit_note(invoice["id"], [
        {"invoice_line_item": hours["id"], "quantity": 2},      # 2 × 950.00, VAT 475.00
        {"invoice_line_item": setup["id"], "amount": 50000},    # 500.00 of 1,495.00, VAT 125.00
    ], at=AT)
    assert (note["total_excluding_tax"], note["total"]) == (240000, 300000)

    outcome, _ = sync(case, note["id"])

    [credit] = by_reference(case, "invoices/booked", CN_NUMBER)
    assert case.totals(credit) == ("-2400.00", "-600.00", "-3000.00")
    assert lines_of(credit) == [("prod_hours", -2, 950), ("prod_setup", -1, 500)]
    assert [l["description"] for l in credit["lines"]] == ["7.5 × prod_hours", "1 × prod_setup"]
    assert outcome.reconciled


def test_the_adapted_invoice_has_what_the_engine_reads_negated(case):
    invoice = stripe_invoice([line("prod_hours", 712500, "7.5"), line("prod_setup", 149500)])
    booked_original(case, invoice)
    hours, setup = invoice["lines"]["data"]
    note = case.stripe.add_credit_note(invoice["id"], [{"invoice_line_item": hours["id"], "quantity": 2},
                                                       {"invoice_line_item": setup["id"], "amount": 50000}],
                                       reason="duplicate", at=AT)
    fetched = fetch_credit_note(client_for(case), note["id"])
    assert fetched["invoice"]["id"] == invoice["id"] and fetched["invoice"]["customer"]["id"] == "cus_zWcPDxNG0RaLgg"
    assert all(t["tax_rate_details"]["tax_rate"]["percentage"] == 25 for l in fetched["lines"]["data"] for t in l["taxes"])

    adapted = credit_note_as_invoice(fetched)

    assert (adapted["id"], adapted["number"], adapted["status"], adapted["due_date"]) == (note["id"], CN_NUMBER, "open", None)
    assert adapted["credit_note"]["invoice_number"] == INVOICE_NUMBER and adapted["effective_at"] == AT
    assert (adapted["customer_email"], adapted["customer_address"]) == (invoice["customer_email"], invoice["customer_address"])
    assert (adapted["total"], adapted["total_excluding_tax"], adapted["subtotal"]) == (-300000, -240000, -240000)
    assert sum(t["amount"] for t in adapted["total_taxes"]) == -60000
    assert [(l["amount"], l["quantity_decimal"], [t["amount"] for t in l["taxes"]], l["pricing"]["price_details"]["product"])
            for l in adapted["lines"]["data"]] == [(-190000, "2", [-47500], "prod_hours"), (-50000, "1", [-12500], "prod_setup")]


def test_a_custom_line_goes_on_the_default_product_with_its_description(case):
    invoice = stripe_invoice([line("prod_hours", 712500, "7.5")])
    booked_original(case, invoice)
    note = case.stripe.add_credit_note(invoice["id"], [{"type": "custom_line_item", "description": "Goodwill for the late delivery",
                                                        "unit_amount": 1999, "quantity": 1, "tax_rates": [DK25["id"]]}], at=AT)
    assert note["total"] == 2499  # 19.99 + 4.9975 rounded half up to 5.00

    outcome, _ = sync(case, note["id"])

    [credit] = by_reference(case, "invoices/booked", CN_NUMBER)
    assert case.totals(credit) == ("-19.99", "-5.00", "-24.99")
    assert lines_of(credit) == [("MISC", -1, 19.99)]
    assert credit["lines"][0]["description"] == "Goodwill for the late delivery"
    assert outcome.reconciled


@pytest.mark.parametrize("invoice_args, credit, settings, original_totals, credit_totals, treatment", [
    (dict(lines=[line("prod_consult", 100000, reason="reverse_charge", rate=DE19)], exempt="reverse",
          tax_ids=(("eu_vat", "DE123456789"),)),
     {"amount": 40000}, {}, ("1000.00", "0.00", "1000.00"), ("-400.00", "0.00", "-400.00"),
     "Reverse charge (the customer accounts for VAT)"),
    (dict(lines=[line("prod_cloud", 20700, "3", rate=DE19)], currency="eur"),
     {"quantity": 1}, {"vat_mapping": {"rate:DE:19": VatChoice(2, 4)}}, ("207.00", "39.33", "246.33"),
     ("-69.00", "-13.11", "-82.11"), "DE 19 % (OSS)"),
], ids=["reverse charge", "OSS"])
def test_an_eu_invoice_credited_keeps_its_vat_zone_and_treatment(case, invoice_args, credit, settings, original_totals,
                                                                 credit_totals, treatment):
    invoice = stripe_invoice(country="DE", **invoice_args)
    original = booked_original(case, invoice, **settings)
    assert case.totals(original) == original_totals
    [first] = invoice["lines"]["data"]
    note = case.stripe.add_credit_note(invoice["id"], [{"invoice_line_item": first["id"], **credit}], at=AT)

    outcome, recorder = sync(case, note["id"], **settings)

    [credit_note] = by_reference(case, "invoices/booked", CN_NUMBER)
    assert case.totals(credit_note) == credit_totals
    assert credit_note["recipient"]["vatZone"]["vatZoneNumber"] == original["recipient"]["vatZone"]["vatZoneNumber"] == 2
    assert credit_note["currency"] == original["currency"]
    [vat_step] = [s for s in recorder.steps if s["step"] == "vat"]
    assert vat_step["summary"]["treatments"] == [treatment]
    assert outcome.reconciled


def test_a_credited_invoice_discount_is_reversed_on_the_discount_product(case):
    invoice = stripe_invoice([line("prod_plan", 10000, shared_discount=2000)], invoice_discount=True)
    original = booked_original(case, invoice)
    note = case.stripe.add_credit_note(invoice["id"], at=AT)

    sync(case, note["id"])

    [credit] = by_reference(case, "invoices/booked", CN_NUMBER)
    assert case.totals(original) == ("80.00", "20.00", "100.00")
    assert case.totals(credit) == ("-80.00", "-20.00", "-100.00")
    assert lines_of(original) == [("prod_plan", 1, 100), ("DISCOUNT", 1, -20)]
    assert lines_of(credit) == [("prod_plan", -1, 100), ("DISCOUNT", -1, -20)]  # the invoice's lines, quantities negated


def test_credited_shipping_is_on_the_shipping_product(case):
    invoice = stripe_invoice([line("prod_lamp", 100000)], shipping=(4900, DK25))
    original = booked_original(case, invoice)
    note = case.stripe.add_credit_note(invoice["id"], at=AT)
    credit_note = fetch_credit_note(client_for(case), note["id"])
    # The lamp was returned and its shipping credited too (`shipping_cost` on the credit note, as Stripe shows it).
    credit_note["shipping_cost"] = {"amount_subtotal": 4900, "amount_tax": 1225, "amount_total": 6125, "shipping_rate": "shr_1",
                                    "taxes": [{"amount": 1225, "rate": DK25, "taxability_reason": "standard_rated",
                                               "taxable_amount": 4900}]}
    credit_note["amount_shipping"] = 4900
    credit_note["total"] += 6125
    credit_note["total_excluding_tax"] += 4900
    credit_note["total_taxes"][0]["amount"] += 1225
    credit_note["total_taxes"][0]["taxable_amount"] += 4900

    outcome, _ = sync(case, note["id"], credit_note=credit_note)

    [credit] = by_reference(case, "invoices/booked", CN_NUMBER)
    assert case.totals(original) == ("1049.00", "262.25", "1311.25")
    assert case.totals(credit) == ("-1049.00", "-262.25", "-1311.25")
    assert lines_of(credit) == [("prod_lamp", -1, 1000), ("SHIP", -1, 49)]
    assert outcome.reconciled


def test_the_draft_invoice_rule_makes_a_draft_credit_note_and_books_nothing(case):
    invoice = stripe_invoice([line("prod_hours", 712500, "7.5"), line("prod_setup", 149500)])
    booked_original(case, invoice)
    note = case.stripe.add_credit_note(invoice["id"], at=AT)

    outcome, _ = sync(case, note["id"], document_type="draft_invoice")

    [draft] = by_reference(case, "invoices/drafts", CN_NUMBER)
    assert case.totals(draft) == ("-8620.00", "-2155.00", "-10775.00")
    assert (outcome.document_type, outcome.document_number, outcome.reconciled) == ("draft_invoice", draft["draftInvoiceNumber"], True)
    assert not by_reference(case, "invoices/booked", CN_NUMBER) and len(case.booked()) == 1  # the original only


def test_a_credit_note_whose_economic_totals_differ_is_held_with_the_reason(case):
    invoice = stripe_invoice([line("prod_hours", 712500, "7.5"), line("prod_setup", 149500)])
    booked_original(case, invoice)
    # Since the invoice, the hours product was moved to a group without VAT: e-conomic would credit no VAT.
    case.economic.store["products"]["prod_hours"]["productGroup"] = {"productGroupNumber": 3}
    hours = invoice["lines"]["data"][0]
    note = case.stripe.add_credit_note(invoice["id"], [{"invoice_line_item": hours["id"], "quantity": 2}], at=AT)

    held, recorder = sync(case, note["id"])

    assert isinstance(held, SyncHeld) and held.setting == "vat-mapping"
    assert "VAT: Stripe -475.00 DKK, e-conomic 0.00 DKK" in held.reason
    assert "gross: Stripe -2,375.00 DKK, e-conomic -1,900.00 DKK" in held.reason
    assert "The draft invoice 2 is kept in e-conomic for review; nothing was booked." in held.reason
    assert held.totals["stripe"] == {"net": "-1900.00", "vat": "-475.00", "gross": "-2375.00"}
    assert recorder.outcomes()[-1] == ("document", "held")
    assert not by_reference(case, "invoices/booked", CN_NUMBER) and len(by_reference(case, "invoices/drafts", CN_NUMBER)) == 1


@pytest.mark.parametrize("lost", ["draft", "booking"])
def test_a_retry_after_a_lost_answer_makes_one_credit_note(case, lost):
    invoice = stripe_invoice([line("prod_hours", 712500, "7.5"), line("prod_setup", 149500)])
    booked_original(case, invoice)
    note = case.stripe.add_credit_note(invoice["id"], at=AT)
    if lost == "draft":
        case.economic.wait_and_drop = True  # the credit note's draft is made, its answer lost
    else:
        case.economic.drop_after_creating.add("invoices/booked")  # booked, the answer lost
    run_id = next(runs)
    first, recorder = sync(case, note["id"], RunState(run_id=run_id, stripe_invoice_id=note["id"], attempt=1))
    assert isinstance(first, SyncFailure) and first.transient
    case.economic.expire_idempotency_keys()  # past e-conomic's key window: only the look-up can find it

    # The worker retries with what the first attempt recorded; the engine reads the credit note itself.
    fields = recorder.fields
    retry = RunState(run_id=run_id, stripe_invoice_id=note["id"], attempt=2,
                     economic_customer_number=fields.get("economic_customer_number"),
                     economic_draft_number=fields.get("economic_draft_number"),
                     document_create_started=fields.get("document_create_started", False))
    outcome, _ = sync(case, note["id"], retry, fetched=False)

    [credit] = by_reference(case, "invoices/booked", CN_NUMBER)
    assert case.totals(credit) == ("-8620.00", "-2155.00", "-10775.00")
    assert outcome.document_number == credit["bookedInvoiceNumber"]
    created = [r for r in case.economic.posts("/invoices/drafts") if r["json"]["references"]["other"] == CN_NUMBER]
    assert len(created) == 1 and len(case.booked()) == 2  # the invoice and one credit note
    assert not case.economic.documents("invoices/drafts")


def test_every_line_page_of_a_long_credit_note_is_read(case):
    invoice = stripe_invoice([line(f"prod_item{n:02d}", 1000 + n * 100) for n in range(12)])
    booked_original(case, invoice)
    note = case.stripe.add_credit_note(invoice["id"], at=AT)
    assert note["lines"]["has_more"]  # Stripe embeds the first 10

    sync(case, note["id"])

    [credit] = by_reference(case, "invoices/booked", CN_NUMBER)
    assert len(credit["lines"]) == 12
    assert case.totals(credit) == ("-186.00", "-46.50", "-232.50")


def test_write_back_goes_to_the_credit_notes_metadata(case, monkeypatch):
    invoice = stripe_invoice([line("prod_hours", 712500, "7.5")])
    booked_original(case, invoice)
    note = case.stripe.add_credit_note(invoice["id"], at=AT)
    client = client_for(case)
    written = []
    monkeypatch.setattr(client.v1.credit_notes, "update", lambda cn_id, params: written.append((cn_id, params)))

    outcome, recorder = sync(case, note["id"], client=client, write_back_to_stripe=True)

    assert written == [(note["id"], {"metadata": {"economic_document_type": "booked_invoice",
                                                  "economic_document_number": str(outcome.document_number),
                                                  "economic_sync_status": "synced"}})]
    assert recorder.steps[-1]["numbers"] == f"Stripe credit note {CN_NUMBER}"
    assert not [r for r in case.stripe.requests if r["method"] == "POST"]  # the invoice was not touched


def test_one_seat_credited_at_a_price_in_cents(case):
    # 3 seats at 33.33; one credited: -1 × 33.33, its VAT 8.3325 rounded as Stripe and e-conomic both round it.
    invoice = stripe_invoice([line("prod_seat", 9999, "3")])
    booked_original(case, invoice)
    seat = invoice["lines"]["data"][0]
    note = case.stripe.add_credit_note(invoice["id"], [{"invoice_line_item": seat["id"], "quantity": 1}], at=AT)
    sync(case, note["id"])
    [credit] = by_reference(case, "invoices/booked", CN_NUMBER)
    assert lines_of(credit) == [("prod_seat", -1, 33.33)]
    assert case.totals(credit) == ("-33.33", "-8.33", "-41.66")
    assert Decimal(str(credit["grossAmount"])) == -Decimal(note["total"]) / 100
