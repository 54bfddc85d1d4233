"""The human-approval story: an AI drafts an email, a person approves or edits it, then it is sent.

The "AI" is a deterministic local generator so the demo needs no network.
"""

from datetime import timedelta
from typing import Any

from stepkit_django import Review, otherwise, register, stepkit, when

OUTBOX: list[dict[str, Any]] = []


def generate_draft(ctx: dict[str, Any]) -> dict[str, Any]:
    """Draft a reply to the customer's message (stands in for an LLM call).

    When the reviewer requested changes, their notes are under ``ctx["review"]`` and the draft is
    rewritten with them (an LLM would get them in its prompt).
    """
    name = (ctx["customer"].split() or ["there"])[0]
    decision = ctx.get("review") or {}
    notes = decision.get("comment", "").strip() if decision.get("outcome") == "changes_requested" else ""
    revised = f"{notes.rstrip('.')}.\n\n" if notes else ""
    return {
        "subject": f"Re: {ctx['message'][:40]}",
        "body": f'Hi {name},\n\nThanks for your message: "{ctx["message"]}" We are looking into it '
        f"and will get back to you within one business day.\n\n{revised}Best regards,\nThe support team",
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
            title="Reply to {customer}: {subject}",
            summary=["to", "message"],
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
    .step("send", send_email),
    # What the admin's "Start a run" form asks for (Pipelines → email-approval), and what start() checks.
    input_schema={
        "type": "object",
        "properties": {
            "customer": {"type": "string", "title": "Customer's name", "minLength": 1, "maxLength": 100},
            "to": {
                "type": "string",
                "format": "email",
                "title": "Reply to",
                "description": "The customer's email address.",
            },
            "message": {
                "type": "string",
                "format": "textarea",
                "title": "The customer's message",
                "minLength": 1,
                "maxLength": 2000,
            },
        },
        "required": ["customer", "to", "message"],
    },
)


# -- payment approval: automatic under a threshold, a manager above it ------------------------

PAYMENTS: list[dict[str, Any]] = []
THRESHOLD = 1000


def check_payment(ctx: dict[str, Any]) -> dict[str, Any]:
    return {"checks": {"iban_valid": True, "sanctions_hit": False}, "needs_approval": ctx["amount"] > THRESHOLD}


def payment_summary(ctx: dict[str, Any]) -> dict[str, Any]:
    """What tells two payments of the same amount apart: the invoice, the memo and the checks' outcome."""
    checks = ctx["checks"]
    return {
        "Invoice": ctx.get("invoice") or "none given",
        "Memo": ctx.get("memo") or "none",
        "Checks": "IBAN valid, no sanctions hit"
        if checks["iban_valid"] and not checks["sanctions_hit"]
        else "look at the checks",
    }


def pay(ctx: dict[str, Any]) -> dict[str, Any]:
    PAYMENTS.append({"to": ctx["payee"], "amount": ctx["amount"]})
    return {"paid": True}


payment_approval = register(
    stepkit("payment-approval")
    .step(
        "check",
        check_payment,
        review=Review(
            title="Pay {payee} {amount:,} EUR",
            summary=payment_summary,
            when=lambda ctx: ctx["amount"] > THRESHOLD,
            editable=["amount", "memo"],
            schema={
                "type": "object",
                "properties": {"amount": {"type": "number", "minimum": 0}, "memo": {"type": "string"}},
            },
            assign_to_group="managers",
        ),
    )
    .step("pay", pay),
    input_schema={
        "type": "object",
        "properties": {
            "payee": {"type": "string", "title": "Payee", "minLength": 1, "maxLength": 200},
            "amount": {
                "type": "integer",
                "title": "Amount (whole euros)",
                "minimum": 1,
                "description": f"Payments over {THRESHOLD} wait for a manager's approval.",
            },
            "invoice": {"type": "string", "title": "Invoice number", "maxLength": 50},
            "memo": {"type": "string", "title": "Memo", "maxLength": 200},
        },
        "required": ["payee", "amount"],
    },
)


# -- content moderation: branch on a risk score before asking for approval ---------------------

RISKY_WORDS = ("free money", "click here", "guaranteed", "winner")


def score(ctx: dict[str, Any]) -> dict[str, Any]:
    text = ctx["text"].lower()
    hits = sum(word in text for word in RISKY_WORDS)
    return {"risk": min(1.0, 0.35 * hits)}


#: What a moderator may do with a suspicious post: one button each on the review page.
MODERATION_CHOICES = {"publish": "Publish", "hide": "Hide from the site", "escalate": "Escalate to a senior moderator"}


def moderated(choice: str) -> Any:
    """A when() predicate: the moderator chose ``choice`` (the review writes it at ``moderation``)."""
    return lambda ctx: ctx.get("moderation") == choice


content_moderation = register(
    stepkit("content-moderation")
    .step("score", score)
    .branch_on(
        "route",
        when(
            lambda ctx: ctx["risk"] < 0.3, lambda b: b.step("publish", lambda ctx: {"status": "published"}), name="safe"
        ),
        when(
            lambda ctx: ctx["risk"] < 0.8,
            lambda b: b.step(
                "hold",
                lambda ctx: {"status": "held"},
                review=Review(
                    title="Suspicious post: {text}",
                    summary=lambda ctx: {"Risk": f"{ctx['risk']:.0%}", "Length": f"{len(ctx['text'])} characters"},
                    editable=["text"],
                    assign_to_group="moderators",
                    # The moderator's choice is written at ctx["moderation"]; the branch below routes on it.
                    choices=MODERATION_CHOICES,
                    choice_key="moderation",
                ),
            ).branch_on(
                "decide",
                when(
                    moderated("publish"),
                    lambda b: b.step("publish", lambda ctx: {"status": "published"}),
                    name="publish",
                ),
                when(moderated("hide"), lambda b: b.step("hide", lambda ctx: {"status": "hidden"}), name="hide"),
                when(
                    moderated("escalate"),
                    lambda b: b.step(
                        "escalate",
                        lambda ctx: {"status": "escalated"},
                        review=Review(
                            title="Escalated post: {text}",
                            summary=lambda ctx: {"Risk": f"{ctx['risk']:.0%}"},
                            editable=[],
                            assign_to_group="moderators",
                            choices={"publish": "Publish", "hide": "Hide from the site"},
                            choice_key="final_moderation",
                        ),
                    ).branch_on(
                        "final",
                        when(
                            lambda ctx: ctx.get("final_moderation") == "publish",
                            lambda b: b.step("publish", lambda ctx: {"status": "published"}),
                            name="publish",
                        ),
                        otherwise(lambda b: b.step("hide", lambda ctx: {"status": "hidden"}), name="hide"),
                    ),
                    name="escalate",
                ),
            ),
            name="suspicious",
        ),
        otherwise(lambda b: b.step("block", lambda ctx: {"status": "blocked"})),
    ),
    input_schema={
        "type": "object",
        "properties": {"text": {"type": "string", "format": "textarea", "title": "Text to publish", "minLength": 1}},
        "required": ["text"],
    },
)


# -- customer support: an AI drafts a reply, an agent approves it ------------------------------


def classify(ctx: dict[str, Any]) -> dict[str, Any]:
    text = ctx["question"].lower()
    topic = "billing" if "invoice" in text or "refund" in text else "shipping" if "order" in text else "general"
    return {"topic": topic}


def draft_reply(ctx: dict[str, Any]) -> dict[str, Any]:
    canned = {
        "billing": "I have checked your account and corrected the invoice; a new copy is on its way.",
        "shipping": "Your order left our warehouse this morning; you will receive tracking details shortly.",
        "general": "Thanks for reaching out; a specialist will follow up within a day.",
    }
    return {"reply": canned[ctx["topic"]]}


support_reply = register(
    stepkit("support-reply")
    .step("classify", classify)
    .step(
        "draft-reply",
        draft_reply,
        review=Review(
            title="Answer about {topic}: {question}",
            summary=["topic", "reply"],
            editable=["reply"],
            assign_to_group="editors",
        ),
    )
    .step("send-reply", lambda ctx: {"sent": True}),
    input_schema={
        "type": "object",
        "properties": {"question": {"type": "string", "format": "textarea", "title": "Question", "minLength": 1}},
        "required": ["question"],
    },
)


# -- a staged configuration change that an SRE and a security engineer must both approve ---------


def stage(ctx: dict[str, Any]) -> dict[str, Any]:
    return {"diff": {key: {"from": None, "to": value} for key, value in ctx["changes"].items()}}


config_change = register(
    stepkit("config-change")
    .step(
        "stage",
        stage,
        review=Review(
            title=lambda ctx: "Change " + ", ".join(sorted(ctx["changes"])) + " in production",
            summary=lambda ctx: {"Settings changed": len(ctx["changes"]), "Approvals needed": "SRE and security"},
            editable=["changes"],
            # One approval from each group; with no assignees declared, the item goes to both groups.
            approvals_required={"sre": 1, "security": 1},
            timeout=timedelta(days=1),
            on_timeout="reject",
        ),
    )
    .step("apply", lambda ctx: {"applied": sorted(ctx["changes"])}),
    input_schema={
        "type": "object",
        "properties": {
            "changes": {
                "type": "object",
                "title": "Changes",
                "description": 'Settings and their new values, as JSON: {"rate_limit.api": 500}.',
                "minProperties": 1,
            }
        },
        "required": ["changes"],
    },
)
