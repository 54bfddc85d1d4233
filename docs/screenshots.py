"""Take the README's screenshots from a running demo (``make demo``), with the system's Chromium.

python docs/screenshots.py [http://127.0.0.1:8000]
"""

import sys
from pathlib import Path

from playwright.sync_api import sync_playwright

BASE = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8000"
OUT = Path(__file__).resolve().parent / "images"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def logged_in(browser, username: str, password: str):  # type: ignore[no-untyped-def]
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    page.goto(f"{BASE}/admin/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("input[type=submit]")
    return page


def main() -> None:
    OUT.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        page = logged_in(browser, "editor", "editor-demo-pw")
        page.goto(f"{BASE}/admin/stepkit_django/checkpoint/")
        page.screenshot(path=OUT / "queue.png")
        page.click("#result_list tbody tr:first-child th a")
        page.locator("textarea[name=edit__body]").fill(
            page.locator("textarea[name=edit__body]").input_value().replace("within one business day", "today")
        )
        page.click("button[value=edit]")  # saved: the data table marks the body edited, word by word
        page.wait_for_selector(".messagelist")
        page.screenshot(path=OUT / "review.png", full_page=True)
        admin = logged_in(browser, "admin", "admin-demo-pw")
        admin.goto(f"{BASE}/admin/stepkit_django/checkpoint/overview/")
        admin.screenshot(path=OUT / "overview.png")
        admin.goto(f"{BASE}/admin/stepkit_django/pipelinerun/pipelines/payment-approval/")
        admin.screenshot(path=OUT / "pipelines.png")
        browser.close()


if __name__ == "__main__":
    main()
