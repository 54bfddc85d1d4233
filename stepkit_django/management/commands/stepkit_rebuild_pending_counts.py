from typing import Any

from django.core.management.base import BaseCommand

from stepkit_django.pending_counts import rebuild


class Command(BaseCommand):
    help = (
        "Refill the summary of pending counts from the checkpoints, under a lock (PostgreSQL; after a "
        "restore with triggers disabled or session_replication_role = replica)."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        rows = rebuild()
        if rows is None:
            self.stdout.write("This database keeps no summary (PostgreSQL only): nothing to rebuild.")
        else:
            self.stdout.write(f"Summary rebuilt: {rows} row(s).")
