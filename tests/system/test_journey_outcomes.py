"""The other outcomes of a review, in a real Chromium on the demo (``make demo``), from the login page on.

An editor sends the AI's draft back with notes and approves the redraft; a moderator
picks one of a review's choices (hide, or escalate to a second review with its own
choices); a requester reruns a rejected run from its checkpoint. Each journey asserts
what the person sees and what the demo's database then holds (read back through its
own ``manage.py shell``). The review pages of a revision and of a review with choices
are checked with axe-core.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.system.demo import Demo, log_in, needs_chromium, serve_demo
from tests.system.test_accessibility import serious_violations

pytestmark = [pytest.mark.browser, needs_chromium]

QUEUE = "/admin/stepkit_django/checkpoint/"
RUNS = "/admin/stepkit_django/pipelinerun/"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    with serve_demo(tmp_path_factory.mktemp("outcomes")) as running:
        yield running


def run_of(demo: Demo, checkpoint_id: str) -> dict[str, Any]:
    """The checkpoint's status and its run's status and context, from the demo's database."""
    code = (
        "import json; from stepkit_django.models import Checkpoint; "
        f"cp = Checkpoint.objects.select_related('run').get(pk='{checkpoint_id}'); "
        "print(json.dumps({'status': cp.status, 'revision': cp.revision, 'run_id': str(cp.run_id), "
        "'run': cp.run.status, 'context': cp.run.context}, default=str))"
    )
    return json.loads(demo.query(code).splitlines()[-1])  # type: ignore[no-any-return]


def checkpoints_of(demo: Demo, run_id: str) -> list[dict[str, Any]]:
    """The run's checkpoints, oldest first: id, step, status, revision."""
    code = (
        "import json; from stepkit_django.models import Checkpoint; "
        f"print(json.dumps([{{'id': str(c.pk), 'step': c.step, 'status': c.status, 'revision': c.revision}} "
        f"for c in Checkpoint.objects.filter(run_id='{run_id}').order_by('created_at', 'pk')]))"
    )
    return json.loads(demo.query(code).splitlines()[-1])  # type: ignore[no-any-return]


def start(demo: Demo, pipeline: str, data: dict[str, Any]) -> str:
    """Start a run of the demo as its requester; the run's id."""
    code = (
        "from django.contrib.auth.models import User; from stepkit_django import start; "
        f"print(start({pipeline!r}, {data!r}, user=User.objects.get(username='requester')).pk)"
    )
    return demo.query(code).splitlines()[-1]


def open_item(page: Any, demo: Demo, title_part: str) -> str:
    """Open the queue item whose title contains ``title_part``; its checkpoint id."""
    page.goto(f"{demo.url}{QUEUE}")
    link = page.locator("#result_list tbody tr", has_text=title_part).first.locator("th a")
    href = link.get_attribute("href")
    link.click()
    page.wait_for_selector("#review-form")
    return str(href).rstrip("/").split("/")[-2]


def message(page: Any) -> str:
    page.wait_for_selector(".messagelist")
    return str(page.locator(".messagelist").inner_text())


def test_an_editor_requests_changes_and_approves_the_redraft(demo, browser):
    page = log_in(browser, demo, "editor")
    first = open_item(page, demo, "Reply to Ada Lovelace")
    assert page.locator("#checkpoint-revision").count() == 0  # a first draft says nothing of revisions

    # Without a comment: refused, the reason at the comment box, nothing changed.
    page.click("button[value=request_changes]")
    assert "The decision was refused" in message(page)
    assert page.locator("#field-comment .errorlist").inner_text().strip() != ""
    assert run_of(demo, first)["status"] == "pending"

    page.fill("[name=comment]", "Mention the refund")
    page.click("button[value=request_changes]")
    text = message(page)
    assert "Changes requested on “Reply to Ada Lovelace" in text and "goes back to step generate" in text
    assert f"/{first}/" not in page.url and page.locator("#review-form").count() == 1  # on to the next item
    before = run_of(demo, first)
    assert before["status"] == "changes_requested" and before["run"] == "paused"

    # The redraft waits in the queue as revision 2, the notes asked for before beside it.
    page.goto(f"{demo.url}{QUEUE}")
    assert page.locator("#result_list tbody tr", has_text="Reply to Ada Lovelace").count() == 1
    second = open_item(page, demo, "Reply to Ada Lovelace")
    assert second != first
    assert page.locator("#checkpoint-revision").inner_text() == "2"
    history = page.locator("#revisions")
    assert "Revision 2: the changes asked for before" in history.locator("h2").inner_text()
    assert "Revision 1" in history.inner_text() and "Mention the refund" in history.inner_text()
    assert history.locator("a").get_attribute("href").rstrip("/").split("/")[-2] == first
    assert "Mention the refund." in page.locator("[name=edit__body]").input_value()  # the AI read the notes

    page.click("button[value=approve]")
    assert "Approved “Reply to Ada Lovelace" in message(page)
    after = run_of(demo, second)
    assert after["status"] == "approved" and after["revision"] == 2
    assert after["run"] == "completed" and after["context"]["sent"] is True
    assert "Mention the refund." in after["context"]["body"]  # what was sent is the redraft


def test_a_moderator_hides_a_suspicious_post_with_one_of_its_choices(demo, browser):
    page = log_in(browser, demo, "moderator")
    checkpoint = open_item(page, demo, "Suspicious post: Guaranteed results")
    choices = page.locator("#decision-buttons button[name=_choice]")
    assert choices.all_inner_texts() == ["Publish", "Hide from the site", "Escalate to a senior moderator"]
    assert page.locator("button[value=approve]").count() == 0  # the choices are the approvals
    assert "Each choice approves the item" in page.locator("#review-form").inner_text()

    page.get_by_role("button", name="Hide from the site").click()
    assert "Approved “Suspicious post: Guaranteed results" in message(page)
    after = run_of(demo, checkpoint)
    assert after["status"] == "approved" and after["run"] == "completed"
    assert after["context"]["moderation"] == "hide" and after["context"]["status"] == "hidden"  # the branch ran


def test_a_moderator_escalates_a_post_to_a_second_review_with_its_own_choices(demo, browser):
    run = start(demo, "content-moderation", {"text": "Guaranteed delivery, click here"})
    page = log_in(browser, demo, "moderator")
    first = open_item(page, demo, "Suspicious post: Guaranteed delivery")
    page.get_by_role("button", name="Escalate to a senior moderator").click()
    assert "Approved “Suspicious post: Guaranteed delivery" in message(page)
    assert run_of(demo, first)["run"] == "paused"

    escalated = open_item(page, demo, "Escalated post: Guaranteed delivery")
    assert page.locator("#decision-buttons button[name=_choice]").all_inner_texts() == ["Publish", "Hide from the site"]
    page.get_by_role("button", name="Publish").click()
    assert "Approved “Escalated post" in message(page)
    after = run_of(demo, escalated)
    assert after["run_id"] == run and after["run"] == "completed"
    assert after["context"]["moderation"] == "escalate" and after["context"]["final_moderation"] == "publish"
    assert after["context"]["status"] == "published"
    assert [c["step"].rsplit("/", 1)[-1] for c in checkpoints_of(demo, run)] == ["hold", "escalate"]


def test_the_starter_reruns_a_rejected_run_and_the_new_run_waits_for_its_review(demo, browser):
    editor = log_in(browser, demo, "editor")
    checkpoint = open_item(editor, demo, "Reply to Alan Turing")
    editor.fill("[name=comment]", "Wrong customer")
    editor.click("button[value=reject]")
    assert "Rejected “Reply to Alan Turing" in message(editor)
    original = run_of(demo, checkpoint)
    assert original["run"] == "rejected"
    run_page = f"{demo.url}{RUNS}{original['run_id']}/change/"

    editor.goto(run_page)  # a reviewer who neither started the run nor manages runs: no rerun button
    editor.wait_for_selector("#stepkit-run-reviews")
    assert editor.get_by_role("button", name="Rerun from step generate").count() == 0

    page = log_in(browser, demo, "requester")
    page.goto(run_page)
    reviews = page.locator("#stepkit-run-reviews")
    assert "Reply to Alan Turing" in reviews.inner_text() and "Rejected" in reviews.inner_text()
    page.get_by_role("button", name="Rerun from step generate").click()
    text = message(page)
    assert "a rerun from step generate; it waits for the review of that step" in text

    new_run = page.url.rstrip("/").split("/")[-2]
    assert new_run != original["run_id"]
    assert "Paused for review" in page.locator(".field-status").inner_text()
    forked = page.locator(".field-rerun_of")
    assert "Rerun of" in forked.inner_text()
    links = [str(a.get_attribute("href")) for a in forked.locator("a").all()]
    assert f"{QUEUE}{checkpoint}/change/" in links and f"{RUNS}{original['run_id']}/change/" in links
    assert run_of(demo, checkpoint)["run"] == "rejected"  # the original stays as it was
    assert serious_violations(page) == []

    [again] = checkpoints_of(demo, new_run)
    assert again["status"] == "pending" and again["step"] == "generate"
    open_item(editor, demo, "Reply to Alan Turing")  # in the editors' queue again
    assert editor.url.rstrip("/").split("/")[-2] == again["id"]


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_the_review_page_of_a_revision_has_no_serious_violations(demo, browser, theme):
    run = start(demo, "email-approval", {"customer": f"Grace {theme}", "to": "grace@example.com", "message": "Hi"})
    [first] = checkpoints_of(demo, run)
    demo.query(
        "from django.contrib.auth.models import User; from stepkit_django import review; "
        f"review.request_changes('{first['id']}', User.objects.get(username='editor'), 'Say when it ships')"
    )
    page = log_in(browser, demo, "editor", color_scheme=theme)
    open_item(page, demo, f"Reply to Grace {theme}")
    assert "Say when it ships" in page.locator("#revisions").inner_text()
    assert serious_violations(page) == []
    page.click("#revisions a")  # the earlier revision, decided: read-only, with its comment
    page.wait_for_selector("#decision")
    assert "Say when it ships" in page.locator("#decision").inner_text()
    assert serious_violations(page) == []


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_the_review_page_with_choices_has_no_serious_violations(demo, browser, theme):
    start(demo, "content-moderation", {"text": f"Click here, {theme} theme"})
    page = log_in(browser, demo, "moderator", color_scheme=theme)
    open_item(page, demo, f"Suspicious post: Click here, {theme}")
    assert page.locator("#decision-buttons button[name=_choice]").count() == 3
    assert serious_violations(page) == []
