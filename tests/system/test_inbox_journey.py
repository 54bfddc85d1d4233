"""A reviewer who is not staff works the inbox (``/review/``) of the demo in a real Chromium, from the login page on.

``writer`` (editors and moderators, ``is_staff`` False) logs in at the project's login
page, claims the oldest item with "Review next", edits a letter over several lines and
approves it, requests changes on another, picks a moderation choice; a manager sees
none of it. What the database then holds is read back through the demo's ``manage.py shell``.
The inbox's queue and review page have no serious or critical accessibility violations.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.system.demo import PASSWORDS, Demo, needs_chromium, serve_demo
from tests.system.test_accessibility import serious_violations

pytestmark = [pytest.mark.browser, needs_chromium]

INBOX = "/review/"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    with serve_demo(tmp_path_factory.mktemp("inbox")) as running:
        yield running


def inbox_log_in(browser: Any, demo: Demo, username: str) -> Any:
    """A new page with ``username`` logged in through the project's login page (not the admin's)."""
    page = browser.new_page(viewport={"width": 1280, "height": 800}, locale="en-US")
    page.goto(f"{demo.url}{INBOX}")  # anonymous: sent to the login page
    assert "/accounts/login/" in page.url
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORDS[username])
    page.click("button[type=submit]")
    page.wait_for_selector("#queue-count")
    return page


def stored(demo: Demo, checkpoint_id: str) -> dict[str, Any]:
    code = (
        "import json; from stepkit_django.models import Checkpoint; "
        f"cp = Checkpoint.objects.get(pk='{checkpoint_id}'); "
        "print(json.dumps({'status': cp.status, 'override_data': cp.override_data, 'run': cp.run.status, "
        "'context': cp.run.context, 'decided_by': cp.decided_by.username if cp.decided_by else None}))"
    )
    return json.loads(demo.query(code))  # type: ignore[no-any-return]


def checkpoint_id(page: Any) -> str:
    return str(page.url).rstrip("/").split("/")[-1]


def open_item(page: Any, demo: Demo, title_part: str) -> str:
    page.goto(f"{demo.url}{INBOX}")
    page.locator("#queue .item-title", has_text=title_part).first.click()
    page.wait_for_selector("#review-form")
    return checkpoint_id(page)


def message(page: Any) -> str:
    page.wait_for_selector(".messages")
    return str(page.locator(".messages").inner_text())


def test_a_reviewer_who_is_not_staff_works_the_queue_in_the_inbox(demo, browser):
    staff = "from django.contrib.auth.models import User; print(User.objects.get(username='writer').is_staff)"
    assert demo.query(staff) == "False"
    page = inbox_log_in(browser, demo, "writer")
    assert page.locator("#user-name").inner_text() == "writer"
    titles = page.locator("#queue .item-title").all_inner_texts()
    assert any(t.startswith("Reply to Ada Lovelace") for t in titles), titles
    assert any(t.startswith("Suspicious post") for t in titles), titles
    assert not any(t.startswith(("Pay ", "Change ")) for t in titles), titles  # the managers' and the SREs'

    # Review next: the oldest item, claimed
    page.click("#review-next")
    page.wait_for_selector("#review-form")
    assert "You claimed “Reply to Ada Lovelace" in message(page)
    first = checkpoint_id(page)
    page.fill("[name=edit__body]", "Dear Ada,\n\nthe corrected invoice is attached.\n\nKind regards")
    page.click("button[value=approve]")
    assert "Approved “Reply to Ada Lovelace" in message(page)
    after = stored(demo, first)
    assert after["status"] == "approved" and after["run"] == "completed" and after["decided_by"] == "writer"
    assert after["override_data"]["body"] == "Dear Ada,\n\nthe corrected invoice is attached.\n\nKind regards"

    # Request changes on another letter, with the comment the step that runs again reads
    second = open_item(page, demo, "Reply to Alan Turing")
    page.fill("[name=comment]", "Mention the new address form, please.")
    page.click("button[value=request_changes]")
    assert "Changes requested on “Reply to Alan Turing" in message(page)
    assert stored(demo, second)["status"] == "changes_requested"

    # A moderation choice: one button per choice
    third = open_item(page, demo, "Suspicious post")
    page.click("button[name=_choice][value=hide]")
    message(page)
    after = stored(demo, third)
    assert after["status"] == "approved" and after["context"]["moderation"] == "hide"
    assert after["context"]["status"] == "hidden"

    page.goto(f"{demo.url}{INBOX}decisions/")
    decided = page.locator("#decisions .item-title").all_inner_texts()
    assert len(decided) == 3 and decided[0].startswith("Suspicious post")

    # A manager sees nothing of the writer's items, and cannot open them
    other = inbox_log_in(browser, demo, "manager")
    body = other.locator("main").inner_text()
    assert "Reply to" not in body and "Suspicious" not in body and "Pay " in body
    response = other.goto(f"{demo.url}{INBOX}{first}/")
    assert response.status == 404 and "Ada" not in other.content()
    other.goto(f"{demo.url}{INBOX}decisions/")
    assert other.locator("#decisions-empty").count() == 1


def test_the_inbox_has_no_serious_accessibility_violations(demo, browser):
    login = browser.new_page(viewport={"width": 1280, "height": 800}, locale="en-US")
    login.goto(f"{demo.url}/accounts/login/")
    assert serious_violations(login) == []
    page = inbox_log_in(browser, demo, "writer")
    assert serious_violations(page) == []
    open_item(page, demo, "Reply to")
    assert serious_violations(page) == []
    page.goto(f"{demo.url}{INBOX}decisions/")
    assert serious_violations(page) == []


def test_the_inbox_fits_a_phone(demo, browser):
    page = browser.new_page(viewport={"width": 375, "height": 740}, locale="en-US")
    page.goto(f"{demo.url}/accounts/login/?next={INBOX}")
    page.fill("#id_username", "writer")
    page.fill("#id_password", PASSWORDS["writer"])
    page.click("button[type=submit]")
    page.wait_for_selector("#queue-count")
    assert page.evaluate("document.documentElement.scrollWidth") <= 375  # no sideways scrolling
    page.locator("#queue .item-title").first.click()
    page.wait_for_selector("#review-data")
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
