"""Webhooks, received by a real HTTP server on 127.0.0.1 that checks their signatures with the public helper."""

import json
import threading
import time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.test import override_settings
from django.utils import timezone

from stepkit_django import Review, start, stepkit
from stepkit_django.exceptions import NotifierMisconfigured
from stepkit_django.models import Notification
from stepkit_django.notifications import SIGNATURE_HEADER, WebhookNotifier, sign, verify_signature
from stepkit_django.notifications.delivery import deliver, deliver_due
from stepkit_django.status import NotificationStatus

from .conftest import stepkit_settings

pytestmark = pytest.mark.django_db

SECRET = "whsec-test-secret"


class Receiver:
    """A webhook receiver: answers 500 to the first ``failures`` requests, then 204 to valid ones."""

    def __init__(self):
        self.requests = []  # (headers, body) of every request
        self.accepted = []  # the payloads of the requests it accepted
        self.failures = 0
        self.delay = 0.0
        self.redirect = False
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append((dict(self.headers), body))
                time.sleep(receiver.delay)
                if receiver.redirect:
                    self.send_response(307)
                    self.send_header("Location", "http://127.0.0.1:9/elsewhere")
                elif len(receiver.requests) <= receiver.failures:
                    self.send_response(500)
                elif not verify_signature(SECRET, body, self.headers.get(SIGNATURE_HEADER)):
                    self.send_response(401)
                else:
                    receiver.accepted.append(json.loads(body))
                    self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/stepkit?token=abc"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.close()


@pytest.fixture
def hooked(receiver, registered_pipelines, people):
    """STEPKIT["NOTIFIERS"] posts to the receiver; ``hooked()`` starts a run paused for review (sends not run)."""
    notifiers = {
        "hook": {
            "BACKEND": "stepkit_django.notifications.WebhookNotifier",
            "OPTIONS": {"url": receiver.url, "secret": SECRET, "timeout": 1},
        }
    }
    registered_pipelines(
        stepkit("hooked").step(
            "draft",
            lambda c: {"payee": "ACME", "amount": 7},
            review=Review(title="Pay {payee}", summary=["amount"], assign_to_group="editors"),
        )
    )
    with override_settings(STEPKIT=stepkit_settings(NOTIFIERS=notifiers, BASE_URL="https://review.example.com")):
        yield lambda: start("hooked", {}, user=people.alice)


def test_the_webhook_posts_the_event_signed(receiver, hooked):
    run = hooked()
    notification = Notification.objects.get()
    assert notification.address == f"http://127.0.0.1:{receiver.server.server_address[1]}"  # no token shown
    assert deliver(notification.pk) is True
    headers, body = receiver.requests[0]
    cp = run.checkpoints.get()
    payload = json.loads(body)
    assert payload["event"] == "review_requested" and payload["id"] == notification.key
    assert payload["checkpoint"] == {
        "id": str(cp.pk),
        "step": "draft",
        "title": "Pay ACME",
        "summary": {"Amount": "7"},
        "status": "pending",
        "due": None,
    }
    assert payload["links"]["review"] == f"https://review.example.com/review/{cp.pk}/"
    assert payload["run"] == {"id": str(run.pk), "status": "paused"}
    assert headers["Idempotency-Key"] == notification.key and headers["X-Stepkit-Event"] == "review_requested"
    assert headers["Content-Type"] == "application/json"
    assert verify_signature(SECRET, body, headers[SIGNATURE_HEADER])
    assert not verify_signature("another secret", body, headers[SIGNATURE_HEADER])
    assert not verify_signature(SECRET, body.replace(b"ACME", b"EVIL"), headers[SIGNATURE_HEADER])


def test_a_webhook_failing_twice_is_delivered_once_on_the_third_attempt(receiver, hooked):
    receiver.failures = 2
    hooked()
    notification = Notification.objects.get()
    now = timezone.now()
    assert deliver(notification.pk, now) is False
    assert deliver_due(now + timedelta(minutes=1)) == 0
    assert deliver_due(now + timedelta(minutes=5)) == 1
    notification.refresh_from_db()
    assert (notification.status, notification.attempts) == (NotificationStatus.SENT, 3)
    assert len(receiver.requests) == 3 and len(receiver.accepted) == 1  # three attempts, one delivery seen
    assert {headers["Idempotency-Key"] for headers, _body in receiver.requests} == {notification.key}
    assert deliver_due(now + timedelta(days=1)) == 0 and len(receiver.requests) == 3


def test_a_webhook_that_does_not_answer_in_time_is_a_failed_attempt(receiver, hooked):
    receiver.delay = 2  # the notifier waits 1 second
    hooked()
    notification = Notification.objects.get()
    assert deliver(notification.pk) is False
    notification.refresh_from_db()
    assert notification.status == NotificationStatus.PENDING and "timed out" in notification.last_error.lower()


def test_an_error_answer_is_recorded(receiver, hooked):
    receiver.failures = 1
    hooked()
    notification = Notification.objects.get()
    deliver(notification.pk)
    notification.refresh_from_db()
    assert "HTTP Error 500" in notification.last_error and notification.attempts == 1


def test_a_redirect_is_not_followed(receiver, hooked):
    receiver.redirect = True
    hooked()
    notification = Notification.objects.get()
    assert deliver(notification.pk) is False
    notification.refresh_from_db()
    assert "HTTP Error 307" in notification.last_error and len(receiver.requests) == 1


def test_the_signature_window_refuses_a_replay():
    body = b'{"event": "approved"}'
    header = sign(SECRET, body, timestamp=1_000_000)
    assert verify_signature(SECRET, body, header, now=1_000_000 + 300)
    assert not verify_signature(SECRET, body, header, now=1_000_000 + 301)  # replayed later
    assert not verify_signature(SECRET, body, header, now=1_000_000 - 301)
    assert verify_signature(SECRET, body, header, now=1_000_000 + 3000, tolerance=3600)


@pytest.mark.parametrize("header", [None, "", "t=abc,v1=00", "v1=00", "t=1000000", "nonsense"])
def test_a_malformed_signature_is_refused(header):
    assert not verify_signature(SECRET, b"{}", header, now=1_000_000)


def test_a_receiver_rotating_secrets_accepts_either_signature():
    body = b"{}"
    old, new = sign("old", body, timestamp=5), sign("new", body, timestamp=5)
    both = f"{new},v1={old.split('v1=')[1]}"
    assert verify_signature("old", body, both, now=5) and verify_signature("new", body, both, now=5)


@pytest.mark.parametrize("url", ["ftp://example.com/x", "file:///etc/passwd", "example.com/hook", ""])
def test_a_webhook_url_must_be_http(url):
    with pytest.raises(NotifierMisconfigured):
        WebhookNotifier(url, SECRET)
