import pytest


@pytest.fixture
def lines():
    """Collects log lines through ``log_fn`` / ``error_log_fn``."""

    class Lines(list):
        def log(self, **extra):
            return {"log_fn": self.append, "error_log_fn": self.append, **extra}

        @property
        def text(self):
            return "\n".join(self)

    return Lines()
