"""`make demo`: a newcomer signs in, presses "Send a test invoice" and sees it synced, with no accounts."""

import re

import requests

from launch.demo import DEMO_EMAIL, DEMO_PASSWORD

from .helpers import csrf_token_from
from .live import running_portal, wait_for


def test_send_a_test_invoice_and_see_it_synced(tmp_path):
    with running_portal(tmp_path, module="launch.demo") as portal:
        assert "Demo doubles: Stripe on http://127.0.0.1:" in portal.log()
        session = requests.Session()
        token = csrf_token_from(session.get(portal.base_url + "/login").text)
        session.post(portal.base_url + "/login", data={"email": DEMO_EMAIL, "password": DEMO_PASSWORD, "csrf_token": token})
        history = session.get(portal.base_url + "/history").text
        assert "Send a test invoice (invoice.paid)" in history
        answer = session.post(portal.base_url + "/demo/send-invoice",
                              data={"csrf_token": csrf_token_from(history), "event": "invoice.paid"})
        assert "Stripe sent invoice.paid for invoice DEMO-0001" in answer.text

        def synced():
            page = session.get(portal.base_url + "/history").text
            return 'status-succeeded"><span aria-hidden="true">✓</span> Succeeded' in page and page

        page = wait_for(synced, timeout=60, what="the demo invoice to sync")
        detail_url = re.search(r'href="(/history/invoices/in_[^"]+)"', page).group(1)
        detail = session.get(portal.base_url + detail_url).text
        assert "Booked invoice" in detail and "document-number" in detail


def test_an_exempt_customers_invoice_is_held_until_its_vat_is_mapped(tmp_path):
    with running_portal(tmp_path, module="launch.demo") as portal:
        session = requests.Session()
        token = csrf_token_from(session.get(portal.base_url + "/login").text)
        session.post(portal.base_url + "/login", data={"email": DEMO_EMAIL, "password": DEMO_PASSWORD, "csrf_token": token})
        history = session.get(portal.base_url + "/history").text
        session.post(portal.base_url + "/demo/send-invoice",
                     data={"csrf_token": csrf_token_from(history), "event": "invoice.paid", "variant": "exempt"})

        def held():
            page = session.get(portal.base_url + "/history?status=held").text
            return "held for review" in page and "/history/invoices/in_" in page and page

        page = wait_for(held, timeout=60, what="the exempt invoice to be held")
        detail = session.get(portal.base_url + re.search(r'href="(/history/invoices/in_[^"]+)"', page).group(1)).text
        assert "Customer exempt from VAT" in detail and "customer-product-settings#vat-mapping" in detail


def test_a_second_make_demo_carries_on_where_the_first_left_off(tmp_path):
    """The portal remembers which e-conomic customer and products a Stripe customer and products are; the fake
    e-conomic keeps them too (instance/demo/fake-economic.pickle), so the second run's invoice syncs. The fake
    Stripe keeps its invoices (fake-stripe.pickle): the second run's invoice is DEMO-0002, not a second DEMO-0001."""

    def send_and_sync(portal, synced_before: int) -> None:
        session = requests.Session()
        token = csrf_token_from(session.get(portal.base_url + "/login").text)
        session.post(portal.base_url + "/login", data={"email": DEMO_EMAIL, "password": DEMO_PASSWORD, "csrf_token": token})
        history = session.get(portal.base_url + "/history").text
        answer = session.post(portal.base_url + "/demo/send-invoice", data={"csrf_token": csrf_token_from(history), "event": "invoice.paid"})
        assert f"Stripe sent invoice.paid for invoice DEMO-{synced_before + 1:04d}" in answer.text

        def invoices(status: str) -> set[str]:
            page = session.get(portal.base_url + f"/history?status={status}").text
            return set(re.findall(r'href="(/history/invoices/in_[^"]+)"', page))

        def synced():
            assert not invoices("failed"), session.get(portal.base_url + "/history?status=failed").text
            return len(invoices("succeeded")) > synced_before

        wait_for(synced, timeout=60, what="the demo invoice to sync")

    with running_portal(tmp_path, module="launch.demo") as portal:
        assert "the data of the previous run" not in portal.log()
        send_and_sync(portal, 0)
    with running_portal(tmp_path, module="launch.demo") as portal:
        assert "Demo e-conomic: the data of the previous run" in portal.log()
        assert "Demo Stripe: the data of the previous run" in portal.log()
        send_and_sync(portal, 1)
