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


def _recorded(label: str) -> Any:
    def run(ctx: dict[str, Any]) -> dict[str, Any]:
        from stepkit_django import current_step

        step = current_step()
        assert step is not None
        SideEffect.objects.create(kind="step", key=f"{step.run_id}:{label}", payload={"key": step.idempotency_key})
        return {label: True}

    return run


five_steps = register(
    stepkit("five-steps")
    .step("s1", _recorded("s1"))
    .step("s2", _recorded("s2"))
    .step("s3", _recorded("s3"))
    .step("s4", _recorded("s4"))
    .step("s5", _recorded("s5"))
)


def _slow_first_time(ctx: dict[str, Any]) -> dict[str, Any]:
    """Records each attempt with its idempotency key; the first attempt hangs (its worker gets killed)."""
    import time

    from stepkit_django import current_step

    step = current_step()
    assert step is not None
    SideEffect.objects.create(kind="slow-attempt", key=str(step.run_id), payload={"key": step.idempotency_key})
    if SideEffect.objects.filter(kind="slow-attempt", key=str(step.run_id)).count() == 1:
        time.sleep(600)
    return {"slow": True}


slow_middle = register(
    stepkit("slow-middle").step("a", _recorded("a")).step("slow", _slow_first_time).step("c", _recorded("c"))
)


def _draft(ctx: dict[str, Any]) -> dict[str, Any]:
    return {"text": f"draft {ctx['n']}"}


def _publish(ctx: dict[str, Any]) -> dict[str, Any]:
    """Records each execution with the text it published and its idempotency key."""
    from stepkit_django import current_step

    step = current_step()
    assert step is not None
    SideEffect.objects.create(
        kind="publish", key=str(step.run_id), payload={"text": ctx["text"], "key": step.idempotency_key}
    )
    return {"published": True}


load_review = register(
    stepkit("load-review")
    .step("draft", _draft, review=Review(editable=["text"], assign_to_group="editors"))
    .step("publish", _publish)
)


# The action links' end-to-end test: a worker emails each editor approve and reject links.
email_actions = register(
    stepkit("link-payment")
    .step(
        "draft",
        lambda ctx: {"payee": ctx["payee"], "amount": ctx["amount"]},
        review=Review(
            title="Pay {payee} {amount} EUR", summary=["payee", "amount"], assign_to_group="editors", email_actions=True
        ),
    )
    .step("pay", pay)
)
