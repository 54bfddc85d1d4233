"""The human-approval story: an AI drafts an email, a person approves or edits it, then it is sent.

The "AI" is a deterministic local generator so the demo needs no network.
"""

from datetime import timedelta
from typing import Any

from stepkit_django import Review, register, stepkit

OUTBOX: list[dict[str, Any]] = []


def generate_draft(ctx: dict[str, Any]) -> dict[str, Any]:
    """Draft a reply to the customer's message (stands in for an LLM call)."""
    name = ctx["customer"].split()[0]
    return {
        "subject": f"Re: {ctx['message'][:40]}",
        "body": f'Hi {name},\n\nThanks for your message: "{ctx["message"]}" We are looking into it '
        "and will get back to you within one business day.\n\nBest regards,\nThe support team",
    }


def send_email(ctx: dict[str, Any]) -> dict[str, Any]:
    """Send the approved email (here: append it to an in-memory outbox)."""
    OUTBOX.append({"to": ctx["to"], "subject": ctx["subject"], "body": ctx["body"]})
    return {"sent": True}


email_approval = register(
    stepkit("email-approval", version=1)
    .step(
        "generate",
        generate_draft,
        review=Review(
            title="Approve the reply before it is sent",
            editable=["subject", "body"],
            schema={
                "type": "object",
                "properties": {
                    "subject": {"type": "string", "minLength": 1},
                    "body": {"type": "string", "minLength": 1},
                },
                "required": ["subject", "body"],
            },
            assign_to_group="editors",
            timeout=timedelta(days=2),
            on_timeout="reject",
        ),
    )
    .step("send", send_email)
)
