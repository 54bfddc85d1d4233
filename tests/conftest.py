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
def signers(people):
    """Legal: lena, lars; finance: fiona; both: bea (in legal and finance); outsider: bob (an editor)."""
    from django.contrib.auth.models import Group, User

    legal, finance = Group.objects.create(name="legal"), Group.objects.create(name="finance")

    def user(name, *groups):
        u = User.objects.create_user(name, password="pw")
        u.groups.set(groups)
        u.user_permissions.add(people.review_permission)
        return User.objects.get(pk=u.pk)

    people.lena, people.lars = user("lena", legal), user("lars", legal)
    people.fiona, people.bea = user("fiona", finance), user("bea", legal, finance)
    return people


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


# -- responses checked against the OpenAPI schema ------------------------------------------


_API_PREFIX = "/api/stepkit/"
_OPENAPI: list = []  # the OpenAPI document, once read


def _openapi():
    """The API's own OpenAPI document (as ``GET schema/`` serves it), read once, for openapi-core.

    Strict: a response may carry no property its schema does not declare (as if every object
    without ``additionalProperties`` said ``false``), besides having the declared types and formats.
    """
    if not _OPENAPI:
        import json

        import yaml
        from django.test import Client
        from openapi_core import Config, OpenAPI

        response = Client().get(f"{_API_PREFIX}schema/", HTTP_ACCEPT="application/json")
        assert response.status_code == 200, response.content[:500]
        config = Config(
            additional_properties_default_policy="forbid",
            # The schema's own media types, which openapi-core does not know.
            extra_media_type_deserializers={
                "application/vnd.oai.openapi+json": json.loads,
                "application/vnd.oai.openapi": yaml.safe_load,
                "application/yaml": yaml.safe_load,
            },
        )
        _OPENAPI.append(OpenAPI.from_dict(json.loads(response.content), config=config))
    return _OPENAPI[0]


def check_response_against_schema(response):
    """Fail unless ``response`` (of the Django or DRF test client) is one the schema documents for its
    path and method: a documented status code, its headers and a body matching its schema."""
    from openapi_core.templating.paths.exceptions import OperationNotFound, PathNotFound
    from openapi_core.testing import MockRequest, MockResponse

    request = response.wsgi_request
    if not request.path.startswith(_API_PREFIX):
        return
    content_type = response.get("Content-Type", "")
    checked_request = MockRequest(
        "http://testserver",
        request.method,
        request.path,
        args=request.GET,
        headers=dict(request.headers),
        content_type=request.content_type or "",
    )
    checked_response = MockResponse(
        b"".join(response) if response.streaming else response.content,
        status_code=response.status_code,
        headers=dict(response.headers),
        content_type=content_type,
    )
    try:
        _openapi().validate_response(checked_request, checked_response)
    except (PathNotFound, OperationNotFound):
        # Outside the API's operations (an unknown path, a method the path does not take): only Django's
        # and DRF's refusals may answer.
        assert response.status_code in (404, 405), (request.method, request.path, response.status_code)
    except Exception as error:
        invalid = getattr(error.__cause__, "schema_errors", None) or ()
        reasons = [f"{'/'.join(map(str, e.absolute_path))}: {e.message[:300]}" for e in invalid] or [repr(error)]
        raise AssertionError(
            f"{request.method} {request.get_full_path()} answered {response.status_code} {content_type}, "
            f"which the OpenAPI schema does not document: {'; '.join(reasons)}\n{response.content[:500]!r}"
        ) from error


@pytest.fixture
def schema_checked_responses(monkeypatch):
    """Checks every response of the DRF test client (``APIClient``) against the OpenAPI schema."""
    from rest_framework.test import APIClient

    request = APIClient.request

    def checked(self, **kwargs):
        response = request(self, **kwargs)
        check_response_against_schema(response)
        return response

    monkeypatch.setattr(APIClient, "request", checked)
