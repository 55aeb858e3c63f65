"""Stand-ins for the Lambda functions of ``order.asl.json``, for ``stepflow run --handlers``.

Each handler takes the Task's effective input and returns its result, like a
Lambda function invoked directly by ARN. An exception fails the task with the
exception's class name as the error (as Lambda reports ``errorType``), which is
what the workflow's ``Retry`` and ``Catch`` match on. The handlers are
deterministic, so a run always produces the same output.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from typing import Any

__all__ = ["HANDLERS", "EmailBounced", "ServiceUnavailable"]


class ServiceUnavailable(Exception):
    """A transient failure: the workflow retries it."""


class EmailBounced(Exception):
    """The customer's mail server refused the message: the workflow catches it."""


_validated_once: set[str] = set()


def validate_order(order: dict[str, Any]) -> dict[str, Any]:
    """Check the line items and total them; the first call per order fails transiently."""
    if order["orderId"] not in _validated_once:
        _validated_once.add(order["orderId"])
        raise ServiceUnavailable("the order service is warming up, try again")
    problems = [
        f"line {i + 1}: quantity must be positive"
        for i, item in enumerate(order["items"])
        if item["qty"] <= 0
    ]
    total = sum(item["qty"] * item["priceCents"] for item in order["items"])
    return {
        "valid": bool(order["items"]) and not problems,
        "totalCents": total,
        "problems": problems,
    }


def reserve_stock(request: dict[str, Any]) -> dict[str, Any]:
    """Reserve every SKU of the order."""
    return {
        "reservationId": f"res-{request['orderId']}",
        "reserved": {item["sku"]: item["qty"] for item in request["items"]},
    }


def charge_payment(request: dict[str, Any]) -> dict[str, Any]:
    """Charge the customer the order's grand total."""
    return {
        "chargeId": f"ch-{request['orderId']}-{request['customerId']}",
        "amountCents": request["amountCents"],
        "status": "CAPTURED",
    }


def pack_item(request: dict[str, Any]) -> dict[str, Any]:
    """Pack one line item into its own parcel."""
    item = request["item"]
    return {
        "parcelId": f"{request['orderId']}-P{request['index'] + 1}",
        "sku": item["sku"],
        "qty": item["qty"],
        "weightGrams": 150 * item["qty"],
    }


def create_shipment(request: dict[str, Any]) -> dict[str, Any]:
    """Book the courier for the parcels."""
    tracking = zlib.crc32(request["orderId"].encode())
    return {
        "carrier": "ACME Express",
        "trackingNumber": f"1Z{tracking:010d}{request['country']}",
        "parcels": [parcel["parcelId"] for parcel in request["parcels"]],
    }


def send_email(message: dict[str, Any]) -> dict[str, Any]:
    """Send the shipping notification; reserved example domains bounce."""
    domain = message["to"].rpartition("@")[2]
    if domain in ("example.com", "example.org", "example.net"):
        raise EmailBounced(f"{domain} does not accept mail (RFC 2606 reserved domain)")
    return {"messageId": f"msg-{zlib.crc32(message['subject'].encode()):08x}", "sent": True}


HANDLERS: dict[str, Callable[[Any], Any]] = {
    "validate-order": validate_order,
    "reserve-stock": reserve_stock,
    "charge-payment": charge_payment,
    "pack-item": pack_item,
    "create-shipment": create_shipment,
    "send-email": send_email,
}
