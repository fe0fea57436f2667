"""A small client for e-conomic's REST API (https://restapi.e-conomic.com), built on `requests`.

Every failure becomes an `EconomicError` carrying what e-conomic said (message, error code, per-field
errors, log id) and whether trying again can help, so callers can retry transient failures and show
permanent ones to the merchant word for word.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import requests

from .http import http_session

DEFAULT_BASE_URL = "https://restapi.e-conomic.com"
TRANSIENT_STATUSES = {408, 429, 500, 502, 503, 504}


@dataclass
class EconomicError(Exception):
    message: str
    status: int | None = None
    error_code: str | None = None
    log_id: str | None = None
    field_errors: dict[str, list[str]] = field(default_factory=dict)
    transient: bool = False
    retry_after: float | None = None

    def __str__(self) -> str:
        text = self.message
        if self.status:
            text = f"e-conomic answered {self.status}: {text}"
        if self.field_errors:
            details = "; ".join(f"{name}: {', '.join(msgs)}" for name, msgs in self.field_errors.items())
            text = f"{text} ({details})"
        if self.log_id:
            text = f"{text} [logId {self.log_id}]"
        return text


def _collect_field_errors(errors: Any, prefix: str = "") -> dict[str, list[str]]:
    """Flatten e-conomic's nested `errors` object into {"delivery.city": ["…"]}."""
    found: dict[str, list[str]] = {}
    if isinstance(errors, dict):
        for name, value in errors.items():
            if name == "errors" and isinstance(value, list):
                messages = [e.get("errorMessage") or e.get("message") or str(e) for e in value if isinstance(e, dict)]
                if messages:
                    found.setdefault(prefix or "(document)", []).extend(messages)
            else:
                path = f"{prefix}.{name}" if prefix else name
                found.update(_collect_field_errors(value, path))
    elif isinstance(errors, list):
        for index, item in enumerate(errors):
            found.update(_collect_field_errors(item, f"{prefix}[{index}]"))
    return found


def _retry_after_seconds(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def said_once(message: str, hint: str | None) -> str:
    """e-conomic's message and its developer hint, each said once: the hint often repeats the message, give or
    take a full stop, spacing or case ("X. X." was shown), and then only the fuller of the two is kept."""
    message, hint = " ".join(message.split()), " ".join((hint or "").split())

    def plain(text: str) -> str:
        return text.rstrip(" .").casefold()

    if not hint or plain(hint) in plain(message):
        return message
    if plain(message) in plain(hint):
        return hint
    return f"{message} {hint}"


def error_from_response(response: requests.Response) -> EconomicError:
    try:
        body = response.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    message = said_once(body.get("message") or response.reason or "Unexpected answer", body.get("developerHint"))
    return EconomicError(
        message=message,
        status=response.status_code,
        error_code=body.get("errorCode"),
        log_id=body.get("logId"),
        field_errors=_collect_field_errors(body.get("errors") or {}),
        transient=response.status_code in TRANSIENT_STATUSES,
        retry_after=_retry_after_seconds(response),
    )


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        # Amounts reach here already quantized to at most 2 decimals, whose shortest float repr is
        # the same digits, so the JSON text is exact.
        number = float(value)
        if Decimal(repr(number)) != value:
            raise ValueError(f"{value} cannot be sent to e-conomic exactly")
        return number
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def encode_body(body: dict) -> bytes:
    return json.dumps(body, default=_json_default, ensure_ascii=False).encode("utf-8")


class EconomicClient:
    def __init__(
        self,
        app_secret_token: str,
        agreement_grant_token: str,
        base_url: str = DEFAULT_BASE_URL,
        timeout: tuple[float, float] = (5.0, 20.0),
        session: requests.Session | None = None,
        before_request: Callable[[], None] | None = None,
    ) -> None:
        """`before_request`: called before every request, e.g. to commit what a run learnt so far."""
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.session = session or http_session(self.base_url)
        self.headers = {
            "X-AppSecretToken": app_secret_token,
            "X-AgreementGrantToken": agreement_grant_token,
            "Accept": "application/json",
        }
        self.before_request = before_request
        self.last_rate_limit: str | None = None
        self.calls = 0  # requests sent, for the audit trail and the benchmarks

    def request(
        self,
        method: str,
        path: str,
        *,
        json: dict | None = None,
        params: dict | None = None,
        idempotency_key: str | None = None,
    ) -> Any:
        headers = dict(self.headers)
        data = None
        if json is not None:
            headers["Content-Type"] = "application/json"
            data = encode_body(json)
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        if self.before_request is not None:
            self.before_request()
        self.calls += 1
        try:
            response = self.session.request(
                method, self.base_url + path, data=data, params=params, headers=headers, timeout=self.timeout
            )
        except requests.Timeout as exc:
            raise EconomicError(f"e-conomic at {self.base_url} did not answer in time.", transient=True) from exc
        except requests.ConnectionError as exc:
            raise EconomicError(f"Could not reach e-conomic at {self.base_url} (the connection failed).", transient=True) from exc
        self.last_rate_limit = response.headers.get("X-RateLimiting")
        if response.status_code >= 400:
            raise error_from_response(response)
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError as exc:
            raise EconomicError("e-conomic answered with something that is not JSON.", status=response.status_code, transient=True) from exc

    def list_all(self, path: str, params: dict | None = None, pagesize: int = 1000) -> list[dict]:
        """Every item of a collection resource, page by page (`skippages`/`pagesize`)."""
        items: list[dict] = []
        page = 0
        while True:
            answer = self.request("GET", path, params={**(params or {}), "skippages": page, "pagesize": pagesize})
            collection = (answer or {}).get("collection") or []
            items.extend(collection)
            if len(collection) < pagesize:
                return items
            page += 1

    def get_self(self) -> dict:
        """The agreement these tokens grant access to (`GET /self`)."""
        return self.request("GET", "/self")
