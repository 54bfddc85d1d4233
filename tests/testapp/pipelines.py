"""Pipelines of the test project; discovered at startup like any app's pipelines.py."""

from typing import Any

from stepkit_django import Review, register, stepkit

from .models import SideEffect


def generate_draft(ctx: dict[str, Any]) -> dict[str, Any]:
    return {"subject": f"Re: {ctx['message']}", "body": f"Hello {ctx['customer']}, thanks for writing."}


def send_email(ctx: dict[str, Any]) -> dict[str, Any]:
    SideEffect.objects.create(kind="email", key=ctx["to"], payload={"subject": ctx["subject"], "body": ctx["body"]})
    return {"sent": True}


EMAIL_SCHEMA = {
    "type": "object",
    "properties": {
        "subject": {"type": "string", "minLength": 1, "maxLength": 200},
        "body": {"type": "string", "minLength": 1},
    },
    "required": ["subject", "body"],
}

email_approval = register(
    stepkit("email-approval", version=1)
    .step(
        "generate",
        generate_draft,
        review=Review(editable=["subject", "body"], schema=EMAIL_SCHEMA, assign_to_group="editors"),
    )
    .step("send", send_email)
)


def pay(ctx: dict[str, Any]) -> dict[str, Any]:
    SideEffect.objects.create(kind="payment", key=str(ctx["amount"]))
    return {"paid": True}


payment_approval = register(
    stepkit("payment-approval")
    .step("check", lambda ctx: {"checked": True}, review=Review(when=lambda ctx: ctx["amount"] > 1000))
    .step("pay", pay)
)
