"""Take the docs' screenshots of the demo, in the light and the dark theme, with the system's Chromium.

python docs/screenshots.py                         # serves a fresh demo of its own (tests/system/demo.py)
python docs/screenshots.py http://127.0.0.1:8000   # or uses a running ``make demo``

Writes docs/images/<name>.png (light) and <name>-dark.png for the queue, the review
page, the bulk confirmation, the overview and a pipeline's page; and, in the light theme,
the inbox's queue and review page (inbox-queue.png, inbox-review.png) and its queue on a
phone (inbox-phone.png).
"""

import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "images"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
PASSWORDS = {
    "editor": "editor-demo-pw",
    "manager": "manager-demo-pw",
    "admin": "admin-demo-pw",
    "writer": "writer-demo-pw",
}


def logged_in(browser: Any, base: str, username: str, scheme: str) -> Any:
    page = browser.new_page(viewport={"width": 1280, "height": 800}, color_scheme=scheme)
    page.goto(f"{base}/admin/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORDS[username])
    page.click("input[type=submit]")
    return page


@contextmanager
def demo_url() -> Iterator[str]:
    if len(sys.argv) > 1:
        yield sys.argv[1]
        return
    sys.path.insert(0, str(ROOT))
    from tests.system.demo import serve_demo

    with serve_demo(Path(tempfile.mkdtemp())) as demo:
        yield demo.url


def shoot(page: Any, name: str, scheme: str, **options: Any) -> None:
    page.screenshot(path=OUT / (f"{name}.png" if scheme == "light" else f"{name}-dark.png"), **options)


def main() -> None:
    OUT.mkdir(exist_ok=True)
    with demo_url() as base, sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        edited = False
        for scheme in ("light", "dark"):
            page = logged_in(browser, base, "manager", scheme)
            page.goto(f"{base}/admin/stepkit_django/checkpoint/")
            shoot(page, "queue", scheme)
            page.locator("#result_list tbody tr input.action-select").nth(0).check()
            page.locator("#result_list tbody tr input.action-select").nth(1).check()
            page.select_option("select[name=action]", "approve_selected")
            page.click("button[name=index]")
            page.wait_for_selector("#bulk-items")
            shoot(page, "bulk-confirmation", scheme)

            editor = logged_in(browser, base, "editor", scheme)
            editor.goto(f"{base}/admin/stepkit_django/checkpoint/")
            editor.locator("#result_list tbody tr", has_text="Reply to Ada").first.locator("th a").click()
            if not edited:  # saved once: the data table marks the body edited, word by word
                body = editor.locator("[name=edit__body]")
                body.fill(body.input_value().replace("within one business day", "today"))
                editor.click("button[value=edit]")
                editor.wait_for_selector(".messagelist")
                edited = True
            shoot(editor, "review", scheme, full_page=True)

            admin = logged_in(browser, base, "admin", scheme)
            admin.goto(f"{base}/admin/stepkit_django/checkpoint/overview/")
            shoot(admin, "overview", scheme)
            admin.goto(f"{base}/admin/stepkit_django/pipelinerun/pipelines/payment-approval/")
            shoot(admin, "pipelines", scheme)
        inbox(browser, base)
        browser.close()


def inbox_page(browser: Any, base: str, viewport: dict[str, int]) -> Any:
    """A page of the inbox's queue as ``writer`` (not staff), logged in at the project's login page."""
    page = browser.new_page(viewport=viewport, color_scheme="light")
    page.goto(f"{base}/accounts/login/?next=/review/")
    page.fill("#id_username", "writer")
    page.fill("#id_password", PASSWORDS["writer"])
    page.click("button[type=submit]")
    page.wait_for_selector("#queue-count")
    return page


def inbox(browser: Any, base: str) -> None:
    """The inbox's queue (at 1280 pixels and on a phone) and its review page, in the light theme."""
    shoot(inbox_page(browser, base, {"width": 390, "height": 844}), "inbox-phone", "light")
    page = inbox_page(browser, base, {"width": 1280, "height": 800})
    shoot(page, "inbox-queue", "light")
    page.locator("#queue .item-title", has_text="Reply to Alan").first.click()
    page.wait_for_selector("#review-form")
    shoot(page, "inbox-review", "light", full_page=True)


if __name__ == "__main__":
    main()
