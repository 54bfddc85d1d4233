"""End to end: a real ``db_worker`` emails the review request with its action links to an SMTP server
(aiosmtpd on 127.0.0.1); the link is read from the received email, opened (nothing changes), confirmed
(decided), and refused the second time."""

import email
from email.policy import default as default_policy

import pytest
from django.test import override_settings

from stepkit_django import start
from stepkit_django.models import Checkpoint, PipelineRun
from stepkit_django.status import RunStatus
from tests.notifications.conftest import EMAIL
from tests.processes import TASKS, db_worker, stop, wait_for
from tests.testapp.models import SideEffect

from .conftest import links_in, logged_in, whole_database

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def text_of(content):
    message = email.message_from_bytes(content, policy=default_policy)
    return message.get_body(preferencelist=("plain",)).get_content()


def test_a_link_from_a_workers_email_confirms_then_decides_once(tmp_path, smtp_server, cast):
    controller, inbox = smtp_server
    log = tmp_path / "worker.log"
    with override_settings(STEPKIT={**TASKS, "NOTIFIERS": EMAIL}):
        run = start("link-payment", {"payee": "ACME", "amount": 1200}, user=cast.alice)
        worker = db_worker(log, "links", STEPKIT_SMTP_PORT=str(controller.port))
        try:
            wait_for(lambda: len(inbox.messages) == 2, timeout=120, message="two review requests", logs=[log])
            received = {rcpts[0]: text_of(content) for _sender, rcpts, content in inbox.messages}
            approve, reject = links_in(received["bob@example.com"])
            assert links_in(received["carol@example.com"]) != [approve, reject]  # carol's own links
            bob = logged_in(cast.bob)
            before = whole_database()
            page = bob.get(approve)
            assert page.status_code == 200 and "Pay ACME 1200 EUR" in page.content.decode()
            assert whole_database() == before  # opening the link (a scanner's pre-fetch) decides nothing
            assert bob.post(approve, {"comment": "ok"}).status_code == 200
            cp = Checkpoint.objects.get(run=run)
            assert (cp.status, cp.decided_by) == ("approved", cast.bob)
            wait_for(
                lambda: PipelineRun.objects.get(pk=run.pk).status == RunStatus.COMPLETED,
                timeout=120,
                message="the run to complete",
                logs=[log],
            )
            again = bob.post(approve)
            assert again.status_code == 410 and 'data-reason="used"' in again.content.decode()
            assert bob.post(reject).status_code == 410  # the other link of the email is used up too
            assert SideEffect.objects.filter(kind="payment").count() == 1
        finally:
            stop(worker)
