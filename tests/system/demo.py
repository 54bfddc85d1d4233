"""The demo (``make demo``) served for browser tests: a fresh SQLite database, the seeded users and runs.

The server is the example project's ``runserver`` on a free port of 127.0.0.1, with
the inline executor so that runs advance without a worker process.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("STEPKIT_CHROMIUM", "/usr/bin/chromium")
LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]

#: The demo's users and passwords (``stepkit_seed_demo``).
PASSWORDS = {
    "admin": "admin-demo-pw",
    "editor": "editor-demo-pw",
    "manager": "manager-demo-pw",
    "moderator": "moderator-demo-pw",
    "requester": "requester-demo-pw",
    "sre1": "sre1-demo-pw",
    "sre2": "sre2-demo-pw",
    "security": "security-demo-pw",
    "writer": "writer-demo-pw",
}

needs_chromium = pytest.mark.skipif(
    not shutil.which(CHROMIUM) and os.environ.get("STEPKIT_REQUIRE_BROWSER") != "1",
    reason=f"no Chromium at {CHROMIUM} (install Debian's chromium package)",
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Demo:
    """A running demo server and the means to look into its database."""

    def __init__(self, database: Path, url: str) -> None:
        self.database = database
        self.url = url

    def env(self) -> dict[str, str]:
        env = {
            **os.environ,
            "DATABASE_URL": f"sqlite:///{self.database}",
            "STEPKIT_EXECUTOR": "inline",
            # its emails beside its database, not in the checkout's demo-outbox/
            "STEPKIT_DEMO_OUTBOX": str(self.database.parent / "outbox"),
        }
        env.pop("DJANGO_SETTINGS_MODULE", None)
        return env

    def manage(self, *args: str) -> str:
        """Run a management command of the demo against its database; its output."""
        done = subprocess.run(
            [sys.executable, "manage.py", *args], cwd=ROOT, env=self.env(), capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    def query(self, code: str) -> str:
        """Run Python in the demo's Django (``manage.py shell -c``); what it prints."""
        return self.manage("shell", "--no-imports", "-c", code).strip()


@contextmanager
def serve_demo(tmp: Path) -> Iterator[Demo]:
    database = tmp / "demo.sqlite3"
    port = _free_port()
    demo = Demo(database, f"http://127.0.0.1:{port}")
    demo.manage("migrate", "--verbosity", "0")
    demo.manage("stepkit_seed_demo")
    server = subprocess.Popen(
        [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload", "--nothreading"],
        cwd=ROOT,
        env={**demo.env(), "DJANGO_DEBUG": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{demo.url}/admin/login/", timeout=2).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("the demo server did not start") from None
                time.sleep(0.2)
        yield demo
    finally:
        server.terminate()
        server.wait(timeout=30)


def log_in(browser: Any, demo: Demo, username: str, **context: Any) -> Any:
    """A new page of ``browser`` with ``username`` logged in to the demo's admin (1280×800 and English unless
    told: the demo answers in the language the browser asks for)."""
    context.setdefault("locale", "en-US")
    page = browser.new_page(viewport={"width": 1280, "height": 800}, **context)
    page.goto(f"{demo.url}/admin/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORDS[username])
    page.click("input[type=submit]")
    page.wait_for_selector("#content")
    return page
