"""The queue in a real browser at a laptop's width: long titles wrap, the table fits, the approvals stay narrow."""

import pytest

from stepkit_django import Review, review, start, stepkit

from .test_browser import pytestmark  # noqa: F401  (the browser marks; conftest.py gives Debian's Chromium)

LONG = {"payee": "Vandelay Industries International Import Export Holdings", "amount": 12500, "memo": "x " * 60}


@pytest.fixture
def long_titles(people, registered_pipelines):
    registered_pipelines(
        stepkit("content-moderation-of-long-titles").step(
            "suspicious-content-hold",
            lambda ctx: {},
            review=Review(title="Pay {payee} {amount} EUR for {memo}", summary=["payee", "amount", "memo"]),
        )
    )
    people.bob.is_staff = True
    people.bob.save()
    runs = [start("content-moderation-of-long-titles", LONG, user=people.alice) for _ in range(3)]
    review.claim(runs[0].checkpoints.get(), people.carol)


@pytest.mark.parametrize("query", ["", "?status=all"])
def test_at_1280_pixels_the_queue_fits_beside_the_menus_and_the_approvals_stay_narrow(
    long_titles, live_server, page, query
):
    page.set_viewport_size({"width": 1280, "height": 800})
    page.goto(f"{live_server.url}/admin/login/?next=/admin/stepkit_django/checkpoint/{query}")
    page.fill("#id_username", "bob")
    page.fill("#id_password", "pw")
    page.click("input[type=submit]")
    page.wait_for_selector("#result_list")
    results = page.locator("#changelist-form .results")
    assert results.evaluate("e => e.scrollWidth <= e.clientWidth")  # no sideways scrolling
    approvals = page.locator("#result_list th.column-approvals").bounding_box()
    assert approvals is not None
    assert approvals["x"] + approvals["width"] <= 1280 and approvals["width"] < 100
    assert approvals["height"] < 50  # its heading on one line
    title = page.locator("#result_list tbody tr:first-child th.field-item").bounding_box()
    assert title is not None and title["width"] >= 150  # the title has the room left
    assert page.locator("#result_list tbody tr:first-child .stepkit-summary").is_visible()
