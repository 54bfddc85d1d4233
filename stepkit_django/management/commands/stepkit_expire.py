from typing import Any

from django.core.management.base import BaseCommand

from stepkit_django.review import expire_due


class Command(BaseCommand):
    help = "Apply on_timeout to pending checkpoints past their deadline (run it periodically, e.g. from cron)."

    def handle(self, *args: Any, **options: Any) -> None:
        handled = expire_due()
        self.stdout.write(f"{handled} checkpoint(s) past their deadline handled.")
