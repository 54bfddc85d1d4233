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


def _attempt(label: str) -> Any:
    def run(ctx: dict[str, Any]) -> dict[str, Any]:
        import os

        SideEffect.objects.create(kind="attempt", key=label)
        if label == "c" and os.environ.get("STEPKIT_TEST_CRASH_AT_C") == "1":
            os._exit(17)  # the process dies mid-step, as with SIGKILL: no cleanup, no status change
        return {label: True}

    return run


crash_demo = register(
    stepkit("crash-demo")
    .step("a", _attempt("a"))
    .step("b", _attempt("b"))
    .step("c", _attempt("c"))
    .step("d", _attempt("d"))
)
