"""A reviewer does the whole job in a real browser (headless Chromium from the system, via Playwright)."""

import os
import shutil

import pytest

from stepkit_django import start
from stepkit_django.models import PipelineRun
from tests.testapp.models import SideEffect

# The sync Playwright API runs an event loop in the test thread; Django's ORM must be allowed there.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = os.environ.get("STEPKIT_CHROMIUM", "/usr/bin/chromium")

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        not shutil.which(CHROMIUM) and os.environ.get("STEPKIT_REQUIRE_BROWSER") != "1",
        reason=f"no Chromium at {CHROMIUM} (install Debian's chromium package)",
    ),
]


def test_reviewer_edits_the_email_body_approves_and_sees_the_run_completed(people, live_server, page):
    people.bob.is_staff = True
    people.bob.save()
    run = start(
        "email-approval",
        {"message": "Where is my parcel?", "customer": "Ada", "to": "ada@example.com"},
        user=people.alice,
    )

    page.goto(f"{live_server.url}/admin/login/?next=/admin/stepkit_django/checkpoint/")
    page.fill("#id_username", "bob")
    page.fill("#id_password", "pw")
    page.click("input[type=submit]")

    # the queue
    page.wait_for_selector("#result_list")
    assert page.locator("#result_list tbody tr").count() == 1
    page.click("#result_list tbody tr:first-child th a")

    # the review page: edit the body, approve
    body = page.locator("[name=edit__body]")
    assert body.input_value() == "Hello Ada, thanks for writing."
    body.fill("Hi Ada, your parcel arrives tomorrow.")
    page.fill("textarea[name=comment]", "Gave a date")
    page.click("button[value=approve]")
    page.wait_for_selector(".messagelist")
    assert "Approved “" in page.locator(".messagelist").inner_text()
    assert page.locator("#checkpoint-status").inner_text() == "Approved"

    # the run, as the reviewer sees it
    page.click("#run-link")
    page.wait_for_selector("#content-main")
    text = page.locator("#content-main").inner_text()
    assert "Completed" in text
    assert "Hi Ada, your parcel arrives tomorrow." in text

    run.refresh_from_db()
    assert run.status == "completed"
    assert SideEffect.objects.get().payload["body"] == "Hi Ada, your parcel arrives tomorrow."
    assert PipelineRun.objects.count() == 1
