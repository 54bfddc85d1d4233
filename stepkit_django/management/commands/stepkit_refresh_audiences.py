from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from stepkit_django.audiences import BATCH, refresh_all, remove_unused


class Command(BaseCommand):
    help = (
        "Recompute every checkpoint's audience from its assignment rows (after rows were written without "
        "m2m_changed: through models, raw SQL, old code during a rolling deploy); with --remove-unused, then "
        "delete the audiences no checkpoint points at."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--batch-size", type=int, default=BATCH, help="Checkpoints recomputed (audiences deleted) per transaction."
        )
        parser.add_argument(
            "--remove-unused",
            action="store_true",
            help="Then delete the audiences no checkpoint points at (left by reassignments and escalations).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["batch_size"] < 1:
            raise CommandError("--batch-size must be at least 1.")
        changed = refresh_all(options["batch_size"])
        self.stdout.write(f"{changed} checkpoint(s) changed audience.")
        if options["remove_unused"]:
            removed = remove_unused(options["batch_size"])
            self.stdout.write(f"{removed} unused audience(s) removed.")
