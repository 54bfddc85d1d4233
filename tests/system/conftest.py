"""Browser tests share pytest-playwright's one browser, Debian's Chromium (never a downloaded one).

One sync Playwright per test session: a second ``sync_playwright()`` beside
pytest-playwright's would run inside its event loop and fail.
"""

import pytest

from tests.system.demo import CHROMIUM, LAUNCH_ARGS


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": LAUNCH_ARGS}
