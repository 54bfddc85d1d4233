"""The reviewer's pages on the demo have no serious or critical accessibility violations, and work from the keyboard.

axe-core comes bundled in the ``axe-playwright-python`` wheel (nothing is fetched at
test time); Chromium is Debian's.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.system.demo import Demo, log_in, needs_chromium, serve_demo

pytestmark = [pytest.mark.browser, needs_chromium]

SERIOUS = ("serious", "critical")


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    with serve_demo(tmp_path_factory.mktemp("a11y")) as running:
        yield running


@pytest.fixture
def chromium(browser: Any) -> Any:
    """pytest-playwright's browser (Debian's Chromium, see conftest.py)."""
    return browser


def serious_violations(page: Any) -> list[str]:
    from axe_playwright_python.sync_playwright import Axe  # type: ignore[import-untyped]

    results = Axe().run(page)
    return [
        f"{v['id']} ({v['impact']}): {v['help']} — {[n['target'] for n in v['nodes']][:3]}"
        for v in results.response["violations"]
        if v["impact"] in SERIOUS
    ]


@pytest.mark.parametrize("theme", ["light", "dark"])
@pytest.mark.parametrize("username", ["editor", "manager"])
def test_the_queue_has_no_serious_violations(demo, chromium, username, theme):
    page = log_in(chromium, demo, username, color_scheme=theme)
    page.goto(f"{demo.url}/admin/stepkit_django/checkpoint/")
    page.wait_for_selector("#result_list")
    assert serious_violations(page) == []


def test_a_french_browser_gets_the_queue_in_french_with_no_serious_violations(demo, chromium):
    # The demo has LocaleMiddleware: the browser's language decides, the page says which it is in.
    page = log_in(chromium, demo, "editor", locale="fr-FR")
    page.goto(f"{demo.url}/admin/stepkit_django/checkpoint/")
    page.wait_for_selector("#result_list")
    assert page.locator("html").get_attribute("lang") == "fr"
    assert page.locator("#content h1").inner_text() == "File de relecture"
    assert page.locator("select[name=action] option").all_inner_texts()[1:] == [
        "Approuver les éléments sélectionnés",
        "Rejeter les éléments sélectionnés",
    ]
    assert serious_violations(page) == []


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_the_review_page_has_no_serious_violations(demo, chromium, theme):
    page = log_in(chromium, demo, "editor", color_scheme=theme)
    page.goto(f"{demo.url}/admin/stepkit_django/checkpoint/")
    page.click("#result_list tbody tr:first-child th a")
    page.wait_for_selector("button[value=approve]")
    assert serious_violations(page) == []


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_the_review_page_with_edits_and_its_trail_has_no_serious_violations(tmp_path, chromium, theme):
    with serve_demo(tmp_path) as demo:  # its own: it edits and approves, and the other tests count the queue
        _review_with_edits(demo, chromium, theme)


def _review_with_edits(demo: Demo, chromium: Any, theme: str) -> None:
    page = log_in(chromium, demo, "editor", color_scheme=theme)
    page.goto(f"{demo.url}/admin/stepkit_django/checkpoint/?pipeline_name=email-approval")
    page.click("#result_list tbody tr:first-child th a")
    body = page.locator("[name=edit__body]")
    body.fill(body.input_value().replace("within one business day", "today"))
    page.click("button[value=edit]")
    page.wait_for_selector(".stepkit-badge")  # the body is marked edited, its change shown word by word
    for summary in page.locator("#content-main details summary").all():
        summary.click()  # unfolded: the whole texts, the raw context, the details
    assert page.locator("#content-main ins").count() >= 2  # on the table and in the trail
    assert serious_violations(page) == []
    run_link = page.locator("#run-link").get_attribute("href")
    page.click("button[value=approve]")
    page.wait_for_selector(".messagelist")
    assert "Approved “" in page.locator(".messagelist").inner_text()
    assert serious_violations(page) == []  # decided: read-only
    page.goto(f"{demo.url}{run_link}")
    page.wait_for_selector("#content-main")
    assert "Edited body by editor" in page.locator("#content-main").inner_text()
    assert serious_violations(page) == []


def test_the_overview_has_no_serious_violations(demo, chromium):
    page = log_in(chromium, demo, "admin")
    page.goto(f"{demo.url}/admin/stepkit_django/checkpoint/overview/")
    page.wait_for_selector("#content-main")
    assert serious_violations(page) == []


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_the_notifications_and_a_review_page_s_section_have_no_serious_violations(demo, chromium, theme):
    page = log_in(chromium, demo, "editor", color_scheme=theme)
    page.goto(f"{demo.url}/admin/stepkit_django/notification/")
    page.wait_for_selector("#result_list")
    assert "editor" in page.locator("#result_list").inner_text()  # the demo told its editor of its items
    assert serious_violations(page) == []
    page.click("#result_list tbody tr:first-child td.field-checkpoint_link a")
    page.wait_for_selector("#notifications")
    assert "Sent" in page.locator("#notifications").inner_text()
    assert serious_violations(page) == []


def test_a_run_page_has_no_serious_violations(demo, chromium):
    page = log_in(chromium, demo, "admin")
    page.goto(f"{demo.url}/admin/stepkit_django/pipelinerun/")
    page.click("#result_list tbody tr:first-child th a")
    page.wait_for_selector("#content-main")
    assert serious_violations(page) == []


def test_an_editor_reviews_with_the_keyboard_alone(demo, chromium):
    page = log_in(chromium, demo, "editor")
    page.goto(f"{demo.url}/admin/stepkit_django/checkpoint/")
    page.wait_for_selector("#result_list")
    first = page.locator("#result_list tbody tr:first-child th a")
    href = first.get_attribute("href")
    # The first Tab reaches "Skip to main content"; from there, Tab to the first item and open it with Enter.
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.getAttribute('href')") == "#content-start"
    page.keyboard.press("Enter")
    for _ in range(100):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.getAttribute('href')") == href:
            break
    else:
        pytest.fail("the first item of the queue cannot be reached with Tab")
    page.keyboard.press("Enter")
    page.wait_for_selector("button[value=approve]")
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")  # skip the navigation again
    for _ in range(100):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.value") == "approve":
            break
    else:
        pytest.fail("the Approve button cannot be reached with Tab")
    page.keyboard.press("Enter")
    page.wait_for_selector(".messagelist")
    assert "pproved" in page.locator(".messagelist").inner_text()


def test_the_bulk_confirmation_page_has_no_serious_violations(demo, chromium):
    page = log_in(chromium, demo, "editor")
    page.goto(f"{demo.url}/admin/stepkit_django/checkpoint/")
    page.check("#result_list tbody tr:first-child input.action-select")
    page.select_option("select[name=action]", "reject_selected")
    page.click("button[name=index]")
    page.wait_for_selector("#bulk-items")
    assert serious_violations(page) == []


PAYMENTS = "/admin/stepkit_django/pipelinerun/pipelines/payment-approval/"


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_the_pipelines_pages_have_no_serious_violations(demo, chromium, theme):
    page = log_in(chromium, demo, "requester", color_scheme=theme)
    page.goto(f"{demo.url}/admin/stepkit_django/pipelinerun/pipelines/")
    page.wait_for_selector("#pipelines")
    assert serious_violations(page) == []
    page.goto(f"{demo.url}{PAYMENTS}")
    page.fill("#id_input-payee", "Initech")
    page.fill("#id_input-amount", "0")
    page.click("input[name=_start]")
    page.wait_for_selector(".errorlist")  # the page with its errors shown
    assert serious_violations(page) == []


def test_a_requester_starts_a_run_with_the_keyboard_alone(demo, chromium):
    page = log_in(chromium, demo, "requester")
    page.goto(f"{demo.url}{PAYMENTS}")
    page.wait_for_selector("#start-form")
    for _ in range(100):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.name") == "input-payee":
            break
    else:
        pytest.fail("the start form cannot be reached with Tab")
    page.keyboard.type("Umbrella Corp")
    page.keyboard.press("Tab")
    page.keyboard.type("4200")
    page.keyboard.press("Enter")
    page.wait_for_selector(".messagelist")
    assert "was started" in page.locator(".messagelist").inner_text()
    status = demo.query(
        "from stepkit_django.models import PipelineRun; "
        "print(PipelineRun.objects.get(input__payee='Umbrella Corp').status)"
    )
    assert status.splitlines()[-1] == "paused"  # over 1,000: a manager decides
