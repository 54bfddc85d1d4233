"""A signed action link in a real Chromium on the demo (``make demo``): the editor opens the link an email
would carry, sees the confirmation while the database stays as it was, confirms, and the item is decided;
opening the link again says it was used. The confirmation page is checked with axe-core."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.system.demo import Demo, log_in, needs_chromium, serve_demo
from tests.system.test_accessibility import serious_violations

pytestmark = [pytest.mark.browser, needs_chromium]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    with serve_demo(tmp_path_factory.mktemp("links")) as running:
        yield running


def link_for(demo: Demo, title_part: str, username: str, outcome: str) -> tuple[str, str]:
    """The id of the pending checkpoint whose title holds ``title_part`` and an action link for ``username``."""
    code = (
        "from django.contrib.auth.models import User; from stepkit_django import review; "
        "from stepkit_django.models import Checkpoint; "
        f"cp = Checkpoint.objects.filter(status='pending', title__contains={title_part!r}).earliest('created_at'); "
        f"print(cp.pk, review.action_url(cp, User.objects.get(username={username!r}), {outcome!r}))"
    )
    pk, url = demo.query(code).splitlines()[-1].split()
    return pk, urlsplit(url).path  # the demo's BASE_URL names its usual port, not this server's


def state(demo: Demo, checkpoint_id: str) -> dict[str, Any]:
    """The checkpoint's row, its run's status and its events, from the demo's database."""
    code = (
        "import json; from stepkit_django.models import AuditEvent, Checkpoint; "
        f"cp = Checkpoint.objects.select_related('run').get(pk='{checkpoint_id}'); "
        "print(json.dumps({'row': {f.attname: getattr(cp, f.attname) for f in cp._meta.concrete_fields}, "
        "'run': cp.run.status, 'events': [[e.action, e.data] for e in "
        "AuditEvent.objects.filter(run_id=cp.run_id).order_by('timestamp', 'pk')]}, default=str))"
    )
    return json.loads(demo.query(code).splitlines()[-1])  # type: ignore[no-any-return]


def test_an_editor_opens_an_action_link_confirms_and_cannot_use_it_twice(demo, browser):
    checkpoint, url = link_for(demo, "Reply to", "editor", "approve")
    before = state(demo, checkpoint)
    page = log_in(browser, demo, "editor")

    page.goto(f"{demo.url}{url}")
    assert page.locator("h1").inner_text().startswith("Reply to")
    assert "You are about to decide: Approve" in page.locator(".action-link-outcome").inner_text()
    assert serious_violations(page) == []
    assert state(demo, checkpoint) == before  # opening the link decided nothing, claimed nothing

    page.fill("[name=comment]", "Sent from the email")
    page.get_by_role("button", name="Approve").click()
    page.wait_for_selector(".action-link-done")
    assert page.locator("h1").inner_text() == "Decided"
    after = state(demo, checkpoint)
    assert after["row"]["status"] == "approved" and after["row"]["comment"] == "Sent from the email"
    approved = [data for action, data in after["events"] if action == "approved"]
    assert approved and approved[-1]["via"] == "link"

    page.goto(f"{demo.url}{url}")
    assert page.locator("h1").inner_text() == "This link was used already"
    assert "already used or the item changed since the email" in page.locator(".action-link-refused").inner_text()
    assert state(demo, checkpoint)["row"] == after["row"]


def test_another_user_who_opens_the_link_is_refused(demo, browser):
    checkpoint, url = link_for(demo, "Reply to", "editor", "reject")
    before = state(demo, checkpoint)
    page = log_in(browser, demo, "manager")
    response = page.goto(f"{demo.url}{url}")
    assert response is not None and response.status == 403
    assert page.locator("h1").inner_text() == "This link is not yours"
    assert state(demo, checkpoint) == before
