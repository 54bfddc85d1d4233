"""The reviewers' journeys on the demo (``make demo``), in a real Chromium, from the login page on.

An editor edits a letter and approves it; a manager approves a payment untouched;
a manager approves two payments at once through the confirmation page; two
engineers approve a configuration change (a quorum of two); a requester starts
a payment from the Pipelines page. What the database then holds is read back
through the demo's own ``manage.py shell``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.system.demo import Demo, log_in, needs_chromium, serve_demo

pytestmark = [pytest.mark.browser, needs_chromium]

QUEUE = "/admin/stepkit_django/checkpoint/"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    with serve_demo(tmp_path_factory.mktemp("journey")) as running:
        yield running


def stored(demo: Demo, checkpoint_id: str) -> dict[str, Any]:
    """The checkpoint's status, edits and audit events, from the demo's database."""
    code = (
        "import json; from stepkit_django.models import Checkpoint; "
        f"cp = Checkpoint.objects.get(pk='{checkpoint_id}'); "
        "print(json.dumps({'status': cp.status, 'override_data': cp.override_data, 'run': cp.run.status, "
        "'events': [[e.action, e.data] for e in cp.events.order_by('timestamp', 'pk')]}))"
    )
    return json.loads(demo.query(code))  # type: ignore[no-any-return]


def open_item(page: Any, demo: Demo, title_part: str) -> str:
    """Open the queue item whose title contains ``title_part``; its checkpoint id."""
    page.goto(f"{demo.url}{QUEUE}")
    link = page.locator("#result_list tbody tr", has_text=title_part).first.locator("th a")
    href = link.get_attribute("href")
    link.click()
    page.wait_for_selector("#review-form")
    return str(href).rstrip("/").split("/")[-2]


def test_an_editor_edits_a_letter_over_several_lines_and_approves_it(demo, browser):
    page = log_in(browser, demo, "editor")
    page.goto(f"{demo.url}{QUEUE}")
    titles = page.locator("#result_list tbody th").all_inner_texts()
    assert any(t.startswith("Reply to Ada Lovelace") for t in titles), titles  # items you can tell apart
    checkpoint = open_item(page, demo, "Reply to Ada Lovelace")
    assert page.locator("h1").inner_text().startswith("Reply to Ada Lovelace")
    body = page.locator("[name=edit__body]")
    body.fill("Dear Ada,\n\nthe corrected invoice is attached.\n\nKind regards")
    page.click("button[value=approve]")
    page.wait_for_selector(".messagelist")
    assert "Approved “Reply to Ada Lovelace" in page.locator(".messagelist").inner_text()

    after = stored(demo, checkpoint)
    assert after["status"] == "approved" and after["run"] == "completed"
    text = after["override_data"]["body"]
    assert text == "Dear Ada,\n\nthe corrected invoice is attached.\n\nKind regards"  # \n, never \r\n
    edits = [data for action, data in after["events"] if action == "edited"]
    assert len(edits) == 1 and list(edits[0]["changes"]) == ["body"]

    page.goto(f"{demo.url}{QUEUE}{checkpoint}/change/")  # the trail shows the edit as a word-level diff
    trail = page.locator("#audit-trail")
    assert trail.locator("ins").count() >= 1 and trail.locator("del").count() >= 1


def test_a_manager_approves_a_payment_untouched_and_no_edit_is_recorded(demo, browser):
    page = log_in(browser, demo, "manager")
    checkpoint = open_item(page, demo, "Pay Globex")
    before = stored(demo, checkpoint)
    page.click("button[value=approve]")
    page.wait_for_selector(".messagelist")
    after = stored(demo, checkpoint)
    assert after["status"] == "approved" and after["override_data"] == before["override_data"] == {}
    assert [a for a, _ in after["events"] if a == "edited"] == []


def test_the_primary_action_is_styled_as_the_primary_button(demo, browser):
    page = log_in(browser, demo, "editor")
    open_item(page, demo, "Reply to")
    colour = "e => getComputedStyle(e).backgroundColor"
    assert page.eval_on_selector("button[value=approve]", colour) != page.eval_on_selector("button[value=edit]", colour)


def test_a_manager_approves_two_payments_at_once_through_the_confirmation_page(demo, browser):
    page = log_in(browser, demo, "manager")
    page.goto(f"{demo.url}{QUEUE}")
    rows = page.locator("#result_list tbody tr")
    assert rows.count() >= 2
    titles = rows.locator("th").all_inner_texts()
    for i in range(2):
        rows.nth(i).locator("input.action-select").check()
    page.select_option("select[name=action]", "approve_selected")
    page.click("button[name=index]")
    page.wait_for_selector("#bulk-items")
    listed = page.locator("#bulk-items li").all_inner_texts()
    assert len(listed) == 2 and all(any(t.split("\n")[0] in item for item in listed) for t in titles)
    page.click("input[type=submit].default")
    page.wait_for_selector(".messagelist")
    assert "Approved 2 items" in page.locator(".messagelist").inner_text()


def test_an_sre_and_a_security_engineer_approve_a_configuration_change(demo, browser):
    first = log_in(browser, demo, "sre1")
    checkpoint = open_item(first, demo, "Change")
    assert first.locator("#approvals-progress").inner_text().startswith("sre 0/1 · security 0/1")
    first.click("button[value=approve]")
    first.wait_for_selector(".messagelist")
    assert "sre 1/1 · security 0/1, waiting for security" in first.locator(".messagelist").inner_text()
    assert stored(demo, checkpoint)["status"] == "pending"

    # Another SRE is told that their group has approved, and is offered no Approve button.
    other = log_in(browser, demo, "sre2")
    open_item(other, demo, "Change")
    assert "sre already gave the approvals it needs" in other.locator("#quorum-refusal").inner_text()
    assert other.locator("button[value=approve]").count() == 0

    second = log_in(browser, demo, "security")
    open_item(second, demo, "Change")
    second.click("button[value=approve]")
    second.wait_for_selector(".messagelist")
    assert "the run continues" in second.locator(".messagelist").inner_text()
    assert stored(demo, checkpoint)["status"] == "approved"


def test_a_requester_starts_a_payment_from_the_pipelines_page(demo, browser):
    page = log_in(browser, demo, "requester")
    page.goto(f"{demo.url}/admin/stepkit_django/pipelinerun/pipelines/payment-approval/")
    form = page.locator("form#start-form")
    form.locator("[name=input-payee]").fill("Wayne Enterprises")
    form.locator("[name=input-amount]").fill("9000")
    form.locator("[name=input-invoice]").fill("INV-2026-77")
    form.locator("[type=submit]").click()
    page.wait_for_selector(".messagelist")
    assert "was started" in page.locator(".messagelist").inner_text()
    count = demo.query(
        "from stepkit_django.models import Checkpoint; "
        "print(Checkpoint.objects.filter(title__startswith='Pay Wayne Enterprises', status='pending').count())"
    )
    assert count == "1"
