"""Run the human-approval story on the command line.

1. the pipeline runs until the draft is generated, then stops and hands out a checkpoint;
2. a reviewer reads the draft and edits the body (or rejects it);
3. the pipeline resumes from the checkpoint with the edit merged in, and the email is sent.
"""

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from example_project.demo.pipelines import OUTBOX, email_approval
from stepkit_django import StepCompleteEvent, decode_checkpoint


class Command(BaseCommand):
    help = "Run the email-approval pipeline: generate a draft, pause for review, resume with the edit, send."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--customer", default="Ada Lovelace")
        parser.add_argument("--to", default="ada@example.com")
        parser.add_argument("--message", default="My invoice shows the wrong amount.")
        parser.add_argument("--edit-body", default=None, help="Body the reviewer writes instead of the draft.")
        parser.add_argument("--reject", action="store_true", help="The reviewer rejects the draft.")

    def handle(self, *args: Any, **options: Any) -> None:
        paused: dict[str, str] = {}
        log = {"log_fn": lambda line: self.stdout.write(self.style.HTTP_INFO(line)), "error_log_fn": self.stderr.write}

        def pause_for_review(event: StepCompleteEvent) -> None:
            if event.step_name == "generate":
                paused["checkpoint"] = event.checkpoint
                event.stop_pipeline()

        self.stdout.write(self.style.MIGRATE_HEADING("1. Start: the AI drafts a reply"))
        data = {"customer": options["customer"], "to": options["to"], "message": options["message"]}
        context = email_approval.run(data, on_step_complete=pause_for_review, log=log)
        token = paused["checkpoint"]
        self.stdout.write(f"Paused after 'generate'. Draft subject: {context['subject']}")
        self.stdout.write(self.style.NOTICE(context["body"]))
        self.stdout.write(f"Checkpoint ({len(token)} characters, signed): {token[:48]}...")
        self.stdout.write(f"It names step {decode_checkpoint(token)['step']!r} of {email_approval.describe()}")

        self.stdout.write(self.style.MIGRATE_HEADING("2. Review"))
        if options["reject"]:
            self.stdout.write(self.style.WARNING("The reviewer rejected the draft: nothing is sent."))
            return
        body = options["edit_body"] or context["body"].replace("within one business day", "today")
        self.stdout.write("The reviewer approves with an edited body.")

        self.stdout.write(self.style.MIGRATE_HEADING("3. Resume from the checkpoint with the edit"))
        final = email_approval.run_checkpoint(token, override_data={"body": body}, log=log)
        sent = OUTBOX[-1]
        self.stdout.write(self.style.SUCCESS(f"Sent to {sent['to']}: {sent['subject']}"))
        self.stdout.write(sent["body"])
        if not final["sent"] or sent["body"] != body:
            raise CommandError("The email was not sent with the reviewer's body")
