from typing import Any

from django.core.management.base import BaseCommand

from stepkit_django.execution.jobs import send_digests


class Command(BaseCommand):
    help = (
        "The daily digest (run it once a day, e.g. from cron): email each reviewer one list of the pending "
        "checkpoints that wait for them, oldest first, overdue items marked. A second run on the same day sends "
        "nothing; without an email notifier in STEPKIT['NOTIFIERS'] nothing is sent."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        written = send_digests()
        self.stdout.write(f"{written} digest(s) written.")
