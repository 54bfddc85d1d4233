import pytest
from django.conf import settings


def pytest_collection_modifyitems(config, items):
    on_postgres = settings.DATABASES["default"]["ENGINE"].endswith("postgresql")
    skip = pytest.mark.skip(reason="needs PostgreSQL (run with DATABASE_URL=postgres://...)")
    for item in items:
        if "postgres" in item.keywords and not on_postgres:
            item.add_marker(skip)
    # Playwright's session-wide sync API leaves an event loop marked as running in the main
    # thread; tests that call asyncio.run() themselves must run before it starts.
    items.sort(key=lambda item: "browser" in item.keywords)


@pytest.fixture
def lines():
    """Collects log lines through ``log_fn`` / ``error_log_fn``."""

    class Lines(list):
        def log(self, **extra):
            return {"log_fn": self.append, "error_log_fn": self.append, **extra}

        @property
        def text(self):
            return "\n".join(self)

    return Lines()


class People:
    """The cast of the review tests."""

    def __init__(self):
        from django.contrib.auth.models import Group, Permission, User

        self.editors = Group.objects.create(name="editors")
        self.managers = Group.objects.create(name="managers")
        perm = Permission.objects.get(content_type__app_label="stepkit_django", codename="review_checkpoint")
        self.review_permission = perm

        def user(name, *groups, can_review=True, **extra):
            u = User.objects.create_user(name, password="pw", **extra)
            u.groups.set(groups)
            if can_review:
                u.user_permissions.add(perm)
            return User.objects.get(pk=u.pk)  # fresh: permission cache empty

        self.reassign_permission = Permission.objects.get(
            content_type__app_label="stepkit_django", codename="reassign_checkpoint"
        )
        self.alice = user("alice", can_review=False)  # starts runs
        self.bob = user("bob", self.editors)
        self.carol = user("carol", self.editors)
        self.dave = user("dave", self.managers)  # reviewer outside the editors
        self.eve = user("eve", self.editors, can_review=False)  # in the group, no permission
        self.root = User.objects.create_superuser("root", password="pw")

    def grant_reassign(self, name):
        """Give ``name`` (an attribute of the cast) the reassign permission; the fresh user replaces it."""
        from django.contrib.auth.models import User

        user = getattr(self, name)
        user.user_permissions.add(self.reassign_permission)
        setattr(self, name, User.objects.get(pk=user.pk))
        return getattr(self, name)


@pytest.fixture
def people(db):
    return People()


@pytest.fixture
def registered_pipelines():
    """Register pipelines for one test and remove them afterwards."""
    from stepkit_django import register, unregister

    names = []

    def add(pipeline, **kwargs):
        names.append(pipeline.name)
        return register(pipeline, **kwargs)

    yield add
    for name in names:
        unregister(name)
