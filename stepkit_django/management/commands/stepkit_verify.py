from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from stepkit_django.integrity import BATCH_SIZE, verify
from stepkit_django.models import PipelineRun


class Command(BaseCommand):
    help = (
        "Verify the audit trail's hash chains: report every event changed or removed outside stepkit's own "
        "writes and its purge, run by run. Exits with status 1 when it finds a problem."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--run", help="verify this run only (its id)")
        parser.add_argument("--batch-size", type=int, default=BATCH_SIZE, help="runs read at a time")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["batch_size"] < 1:
            raise CommandError("--batch-size must be at least 1")
        run = options["run"]
        if run is not None:
            try:
                exists = PipelineRun.objects.filter(pk=run).exists()
            except ValidationError:
                exists = False
            if not exists:
                raise CommandError(f"No run has the id {run!r}.")
        report = verify(run, batch_size=options["batch_size"])
        current = None
        for problem in report.problems:
            if problem.run != current:
                current = problem.run
                self.stdout.write(f"Run {problem.run}:")
            self.stdout.write(f"  - {problem.message}")
        if report.chained:  # which settings verified links, by name: never a key or a secret
            self.stdout.write(report.keys_summary())
        if not report.ok:
            raise CommandError(report.summary())
        self.stdout.write(report.summary())
