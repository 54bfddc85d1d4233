import re
from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from stepkit_django.exceptions import PipelineNotFound
from stepkit_django.retention import BATCH_SIZE, purge

UNITS = {"d": "days", "h": "hours", "m": "minutes", "w": "weeks"}


def age(text: str) -> timedelta:
    """``90d``, ``12h``, ``30m``, ``2w`` as a timedelta."""
    found = re.fullmatch(r"\s*(\d+)\s*([dhmw])\s*", text)
    if not found or int(found[1]) == 0:
        raise CommandError(f"--older-than takes a positive number and a unit (d, h, m or w), e.g. 90d; got {text!r}")
    return timedelta(**{UNITS[found[2]]: int(found[1])})


class Command(BaseCommand):
    help = (
        "Remove the personal data of runs that ended before a cutoff (inputs, contexts, tokens, edits, and the "
        "values in their audit events), keeping who decided what and when. Without --older-than, each pipeline "
        "registered with a retention is purged of the runs that ended longer ago than it."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--older-than", help="e.g. 90d, 12h, 2w: runs that ended longer ago than this")
        parser.add_argument("--pipeline", help="purge only the runs of this pipeline")
        parser.add_argument("--dry-run", action="store_true", help="count what would be purged; change nothing")
        parser.add_argument("--batch-size", type=int, default=BATCH_SIZE, help="runs per transaction")

    def handle(self, *args: Any, **options: Any) -> None:
        older_than = options["older_than"]
        cutoff = timezone.now() - age(older_than) if older_than else None
        if options["batch_size"] < 1:
            raise CommandError("--batch-size must be at least 1")
        try:
            done = purge(
                cutoff, pipeline=options["pipeline"], dry_run=options["dry_run"], batch_size=options["batch_size"]
            )
        except PipelineNotFound as exc:
            raise CommandError(str(exc)) from exc
        verb = "would be purged (dry run: nothing changed)" if options["dry_run"] else "purged"
        self.stdout.write(
            f"{done['runs']} run(s) {verb}, with {done['checkpoints']} checkpoint(s) and {done['events']} "
            f"audit event(s)" + ("" if options["dry_run"] else f", in {done['batches']} batch(es).")
        )
