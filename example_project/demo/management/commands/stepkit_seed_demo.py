"""Create the demo's users and groups and start a few runs so the queue is not empty."""

from typing import Any

from django.conf import settings
from django.contrib.auth.models import Group, Permission, User
from django.core.management.base import BaseCommand
from rest_framework.authtoken.models import Token

from stepkit_django import start
from stepkit_django.models import PipelineRun

REVIEWERS = {
    # username: (password, groups)
    "editor": ("editor-demo-pw", ["editors"]),
    "manager": ("manager-demo-pw", ["managers"]),
    "moderator": ("moderator-demo-pw", ["moderators"]),
    "sre1": ("sre1-demo-pw", ["sre"]),
    "sre2": ("sre2-demo-pw", ["sre"]),
    "security": ("security-demo-pw", ["security"]),
}
#: Reviewers who may also hand checkpoints to other reviewers (stepkit_django.reassign_checkpoint).
REASSIGNERS = {"manager"}
#: Reviewers who are not staff: they review in the inbox (/review/), not in the admin.
INBOX_REVIEWERS = {
    # username: (password, groups)
    "writer": ("writer-demo-pw", ["editors", "moderators"]),
}


class Command(BaseCommand):
    help = "Create demo users (an admin and reviewers in groups) and start runs of every demo pipeline."

    def handle(self, *args: Any, **options: Any) -> None:
        review = Permission.objects.get(content_type__app_label="stepkit_django", codename="review_checkpoint")
        start_runs = Permission.objects.get(content_type__app_label="stepkit_django", codename="add_pipelinerun")
        reassign = Permission.objects.get(content_type__app_label="stepkit_django", codename="reassign_checkpoint")
        admin, created = User.objects.get_or_create(username="admin", defaults={"is_staff": True, "is_superuser": True})
        if created:
            admin.set_password("admin-demo-pw")
            admin.save()
        # Staff, to start runs from the admin (Pipelines) as well as through the API.
        requester, created = User.objects.get_or_create(username="requester", defaults={"is_staff": True})
        if created:
            requester.set_password("requester-demo-pw")
            requester.save()
            requester.user_permissions.add(start_runs)
        reviewers = [(name, spec, True) for name, spec in REVIEWERS.items()]
        reviewers += [(name, spec, False) for name, spec in INBOX_REVIEWERS.items()]
        for username, (password, groups), staff in reviewers:
            user, created = User.objects.get_or_create(username=username, defaults={"is_staff": staff})
            if created:
                user.set_password(password)
                user.save()
                user.user_permissions.add(review)
                if username in REASSIGNERS:
                    user.user_permissions.add(reassign)
            user.groups.set([Group.objects.get_or_create(name=g)[0] for g in groups])
        # Addresses for the demo's emails (demo-outbox/), also for users seeded before the demo sent any.
        for user in User.objects.filter(email=""):
            user.email = f"{user.username}@stepkit.example"
            user.save(update_fields=["email"])

        if not PipelineRun.objects.exists():
            runs = [
                (
                    "email-approval",
                    {
                        "customer": "Ada Lovelace",
                        "to": "ada@example.com",
                        "message": "My invoice shows the wrong amount.",
                    },
                ),
                (
                    "email-approval",
                    {
                        "customer": "Alan Turing",
                        "to": "alan@example.com",
                        "message": "Can I change my delivery address?",
                    },
                ),
                ("payment-approval", {"payee": "ACME Ltd", "amount": 250}),
                ("payment-approval", {"payee": "Globex", "amount": 12500, "memo": "Q4 licences", "invoice": "GX-2041"}),
                ("payment-approval", {"payee": "Globex", "amount": 12500, "memo": "Q1 licences", "invoice": "GX-2107"}),
                ("payment-approval", {"payee": "Stark Industries", "amount": 4800, "invoice": "SI-88"}),
                ("content-moderation", {"text": "Our spring collection is out."}),
                ("content-moderation", {"text": "WINNER! Click here for free money"}),
                ("content-moderation", {"text": "Guaranteed results, click here"}),
                ("support-reply", {"question": "Where is my order #1234?"}),
                ("config-change", {"changes": {"feature.checkout_v2": True, "rate_limit.api": 500}}),
            ]
            for name, data in runs:
                run = start(name, data, user=requester)
                self.stdout.write(f"  started {name:<20} → {run.status}")

        self.stdout.write(self.style.SUCCESS("Demo users (username / password):"))
        self.stdout.write("  admin / admin-demo-pw (superuser)")
        self.stdout.write("  requester / requester-demo-pw (starts runs: the admin's Pipelines pages, or the API)")
        for username, (password, groups) in REVIEWERS.items():
            also = "; may reassign checkpoints" if username in REASSIGNERS else ""
            self.stdout.write(f"  {username} / {password} (reviewer in {', '.join(groups)}{also})")
        for username, (password, groups) in INBOX_REVIEWERS.items():
            self.stdout.write(f"  {username} / {password} (not staff: reviews in {', '.join(groups)} at /review/)")
        self.stdout.write("The inbox (/review/, log in at /accounts/login/) is for every reviewer, staff or not.")
        outbox = getattr(settings, "EMAIL_OUTBOX", "demo-outbox")
        self.stdout.write(f"  Their emails (username@stepkit.example) are written to {outbox}/")
        # Each token under the name of its user: the requester's starts runs, the editor's reviews them.
        self.stdout.write(self.style.SUCCESS("API tokens (Authorization: Token <key>):"))
        for username, role in (("requester", "starts runs"), ("editor", "reviews the editors' queue")):
            token, _ = Token.objects.get_or_create(user=User.objects.get(username=username))
            self.stdout.write(f"  {username} ({role}): {token.key}")
