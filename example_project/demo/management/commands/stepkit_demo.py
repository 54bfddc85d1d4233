"""Run the human-approval story on the command line, durably.

1. a run starts; the AI drafts a reply; the run pauses in the database with a pending checkpoint;
2. a reviewer from the "editors" group claims it, edits the body and approves it (or rejects it);
3. the run resumes from the checkpoint with the edit merged in and the email is sent;
4. the audit trail is read back with the ORM.
"""

from typing import Any

from django.conf import settings
from django.contrib.auth.models import Group, Permission, User
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.test.utils import override_settings

from example_project.demo.pipelines import OUTBOX
from stepkit_django import review, start


class Command(BaseCommand):
    help = "Start an email-approval run, review it as an editor, and show the audit trail."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--customer", default="Ada Lovelace")
        parser.add_argument("--to", default="ada@example.com")
        parser.add_argument("--message", default="My invoice shows the wrong amount.")
        parser.add_argument("--edit-body", default=None, help="Body the reviewer writes instead of the draft.")
        parser.add_argument("--reject", action="store_true", help="The reviewer rejects the draft.")

    def handle(self, *args: Any, **options: Any) -> None:
        # The story runs in this process from start to end, so no worker is needed.
        with override_settings(STEPKIT={**getattr(settings, "STEPKIT", {}), "EXECUTOR": "inline"}):
            self._story(**options)

    def _story(self, **options: Any) -> None:
        requester, editor = self._users()
        heading = self.style.MIGRATE_HEADING

        self.stdout.write(heading("1. Start: the AI drafts a reply, then the run pauses for review"))
        data = {"customer": options["customer"], "to": options["to"], "message": options["message"]}
        run = start("email-approval", data, user=requester)
        checkpoint = run.checkpoints.get()
        self.stdout.write(f"Run {run.pk} is {run.status} after step {run.current_step!r}.")
        self.stdout.write(f"Checkpoint {checkpoint.pk} is {checkpoint.status}, assigned to the editors group.")
        self.stdout.write(self.style.NOTICE(checkpoint.context["body"]))

        self.stdout.write(heading(f"2. Review by {editor.username}"))
        checkpoint = review.claim(checkpoint, editor)
        if options["reject"]:
            review.reject(checkpoint, editor, comment="Not our tone.")
            run.refresh_from_db()
            self.stdout.write(self.style.WARNING(f"Rejected: the run is {run.status}; nothing was sent."))
        else:
            body = options["edit_body"] or checkpoint.context["body"].replace("within one business day", "today")
            checkpoint = review.edit(checkpoint, editor, {"body": body})
            review.approve(checkpoint, editor, comment="Promise a same-day answer.")
            run.refresh_from_db()
            sent = OUTBOX[-1]
            if run.status != "completed" or sent["body"] != body:
                raise CommandError("The email was not sent with the reviewer's body")
            self.stdout.write(self.style.SUCCESS(f"Approved: the run is {run.status}. Sent to {sent['to']}:"))
            self.stdout.write(sent["body"])

        self.stdout.write(heading("3. The audit trail (run.events.all())"))
        for event in run.events.select_related("actor"):
            who = event.actor.username if event.actor else "system"
            details = event.data or ""
            if event.action == "edited":
                details = "changed: " + ", ".join(event.data["changes"])
            self.stdout.write(f"  {event.timestamp:%H:%M:%S.%f}  {event.action:<15} {who:<10} {details}")

    def _users(self) -> tuple[User, User]:
        editors, _ = Group.objects.get_or_create(name="editors")
        permission = Permission.objects.get(content_type__app_label="stepkit_django", codename="review_checkpoint")
        requester, _ = User.objects.get_or_create(username="requester")
        editor, created = User.objects.get_or_create(username="editor")
        if created:
            editor.groups.add(editors)
            editor.user_permissions.add(permission)
        return requester, User.objects.get(pk=editor.pk)
