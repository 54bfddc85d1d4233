from typing import Any

from django.core.management.base import BaseCommand

from stepkit_django.execution.jobs import recover


class Command(BaseCommand):
    help = (
        "Re-queue runs whose worker stopped (their lease expired) and re-send queued runs nobody picked up. "
        "Run it periodically, e.g. every minute from cron."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        handled = recover()
        self.stdout.write(f"{handled} run(s) re-queued.")
