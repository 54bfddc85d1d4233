from typing import Any

from django.core.management.base import BaseCommand

from stepkit_django.execution.jobs import sweep


class Command(BaseCommand):
    help = (
        "The periodic job (run it every minute, e.g. from cron): apply on_timeout to checkpoints past their "
        "deadline, remind the reviewers of items due soon, re-queue runs whose worker stopped, and send the "
        "notifications due (retries, and sends whose sender stopped)."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        done = sweep()
        self.stdout.write(
            f"{done['expired']} checkpoint(s) past their deadline handled, {done['reminded']} reminded, "
            f"{done['recovered']} run(s) recovered, {done['notifications']} notification(s) sent."
        )
