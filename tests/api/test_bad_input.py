"""Decision integrity (issue 13): bad input is a 400 (412, 404) that changes nothing, never a 500;
edits are bounded in total; the review pages and the API cannot be framed."""

import pytest
from django.conf import settings as django_settings
from django.contrib.auth.models import Permission
from django.test import override_settings
from rest_framework.test import APIClient

from stepkit_django import Review, review, start, stepkit
from stepkit_django.exceptions import InvalidOverride
from stepkit_django.models import AuditEvent, Checkpoint, PipelineRun
from stepkit_django.overrides import validate_override
from stepkit_django.status import CheckpointStatus

pytestmark = pytest.mark.django_db

API = "/api/stepkit"
QUEUE = "/admin/stepkit_django/checkpoint/"
EMAIL = {"message": "Hello", "customer": "Ada", "to": "ada@example.com"}
DIGITS = "9" * 5000  # int() refuses more than 4,300 digits; databases refuse more than 64 bits
PADDED = "0" * 5000 + "1"  # a small number spelled with 5,001 digits
MAX_DEPTH = 64  # stepkit_django.jsonchecks.MAX_DEPTH, one limit for the admin, the API and the services


def client_for(user):
    client = APIClient()
    client.force_authenticate(user)
    return client


def paused(people):
    return start("email-approval", EMAIL, user=people.alice).checkpoints.get()


def url(checkpoint, action=""):
    return f"{API}/checkpoints/{checkpoint.pk}/" + (f"{action}/" if action else "")


def state():
    """Everything a refused request must leave as it was."""
    return (
        list(Checkpoint.objects.order_by("pk").values()),
        AuditEvent.objects.count(),
        PipelineRun.objects.count(),
    )


def unchanged(fn):
    before = state()
    response = fn()
    assert state() == before
    return response


@pytest.fixture
def open_review(registered_pipelines):
    """A pipeline whose Review has no ``editable`` list: the admin shows the JSON editor."""
    registered_pipelines(stepkit("open-review").step("draft", lambda ctx: {"body": "draft"}, review=Review()))
    return "open-review"


# -- hole 11: bad input that gave a 500 ------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "field"),
    [("checkpoints", "assigned_to"), ("checkpoints", "claimed_by"), ("events", "actor")],
)
@pytest.mark.parametrize("value", ["²", DIGITS, PADDED], ids=["superscript-two", "5000-digits", "padded"])
def test_a_user_filter_that_is_no_user_id_is_a_400_on_that_field(people, path, field, value):
    paused(people)
    response = unchanged(lambda: client_for(people.bob).get(f"{API}/{path}/", {field: value}))
    assert response.status_code == 400, response.content
    assert list(response.json()) == [field]


def test_a_user_filter_still_takes_me_and_an_id(people):
    cp = review.claim(paused(people), people.bob)
    bob = client_for(people.bob)
    assert bob.get(f"{API}/checkpoints/", {"claimed_by": "me"}).json()["count"] == 1
    assert bob.get(f"{API}/checkpoints/", {"claimed_by": f"00{people.bob.pk}"}).json()["count"] == 1
    assert bob.get(f"{API}/events/", {"actor": str(people.bob.pk)}).json()["results"][0]["checkpoint"] == str(cp.pk)


@pytest.mark.parametrize("value", [DIGITS, PADDED, "²", "0", "201"])
def test_a_page_size_that_is_no_small_number_is_a_400_on_page_size(people, value):
    paused(people)
    for path in ("checkpoints/", "events/", "runs/"):
        response = client_for(people.bob).get(f"{API}/{path}", {"page_size": value})
        assert response.status_code == 400, (path, response.content)
        assert list(response.json()) == ["page_size"]


def test_a_valid_page_size_still_works(people):
    paused(people)
    paused(people)
    data = client_for(people.bob).get(f"{API}/checkpoints/", {"page_size": "1"}).json()
    assert (data["count"], len(data["results"])) == (2, 1)


@pytest.mark.parametrize(
    "path",
    [f"events/{DIGITS}/", f"events/{'9' * 30}/", f"runs/{DIGITS}/", f"runs/{DIGITS}/events/", f"checkpoints/{DIGITS}/"],
)
def test_a_5000_digit_id_in_the_url_is_a_404(people, path):
    paused(people)
    response = unchanged(lambda: client_for(people.bob).get(f"{API}/{path}"))
    assert response.status_code == 404, response.content


def test_a_decision_on_a_5000_digit_checkpoint_id_is_a_404(people):
    paused(people)
    response = unchanged(lambda: client_for(people.bob).post(f"{API}/checkpoints/{DIGITS}/approve/", {}, format="json"))
    assert response.status_code == 404


@pytest.mark.parametrize("action", ["approve", "edit", "claim"])
@pytest.mark.parametrize("version", [DIGITS, PADDED, "9" * 30], ids=["5000-digits", "padded", "30-digits"])
def test_an_if_match_with_a_huge_version_is_412_and_changes_nothing(people, action, version):
    cp = paused(people)
    body = {"override_data": {"body": "edited"}} if action == "edit" else {}
    response = unchanged(
        lambda: client_for(people.bob).post(
            url(cp, action), body, format="json", headers={"If-Match": f'"{cp.pk}-{version}"'}
        )
    )
    assert response.status_code == 412, response.content
    assert response.json()["detail"] == f'The checkpoint changed: its ETag is now "{cp.pk}-{cp.version}".'


def test_an_if_match_with_the_current_version_still_decides(people):
    cp = paused(people)
    response = client_for(people.bob).post(
        url(cp, "approve"), {}, format="json", headers={"If-Match": f'"{cp.pk}-{cp.version}"'}
    )
    assert response.status_code == 200, response.content
    assert Checkpoint.objects.get(pk=cp.pk).status == CheckpointStatus.APPROVED


@pytest.mark.parametrize(
    "body",
    [
        '{"override_data": {"body": "\\ud800"}}',
        '{"override_data": {"body": "tail \\udfff"}}',
        '{"override_data": {"\\ud800": "x"}}',
        '{"override_data": {"body": ["ok", {"deep": "\\ud83d"}]}}',
    ],
    ids=["lone-high", "lone-low", "in-a-key", "nested"],
)
@pytest.mark.parametrize("action", ["edit", "approve"])
def test_a_lone_surrogate_in_override_data_is_a_400_on_override_data(people, body, action):
    cp = paused(people)
    response = unchanged(
        lambda: client_for(people.bob).generic("POST", url(cp, action), body, content_type="application/json")
    )
    assert response.status_code == 400, response.content
    assert "override_data" in response.json()
    assert "lone surrogate" in response.json()["detail"]


def test_a_surrogate_pair_is_a_character_and_is_accepted(people):
    cp = paused(people)
    body = '{"override_data": {"body": "smile \\ud83d\\ude00"}}'
    response = client_for(people.bob).generic("POST", url(cp, "edit"), body, content_type="application/json")
    assert response.status_code == 200, response.content
    assert Checkpoint.objects.get(pk=cp.pk).override_data == {"body": "smile 😀"}


def test_a_lone_surrogate_in_a_run_input_is_a_400_on_input_and_starts_nothing(people):
    people.bob.user_permissions.add(Permission.objects.get(codename="add_pipelinerun"))
    body = '{"pipeline": "email-approval", "input": {"message": "Hi \\ud800", "customer": "Ada", "to": "a@b.c"}}'
    response = unchanged(
        lambda: client_for(people.bob).generic("POST", f"{API}/runs/", body, content_type="application/json")
    )
    assert response.status_code == 400, response.content
    assert "input" in response.json()
    assert PipelineRun.objects.count() == 0


@pytest.mark.parametrize(
    ("override", "key", "message"),
    [
        ({"body": "\ud800"}, "body", "lone surrogate"),
        ({"\udc00": "x"}, "__all__", "lone surrogate"),
        ({"body": "a\x00b"}, "body", "NUL characters"),
        ({"body": {"a\x00": 1}}, "body", "NUL characters"),
        ({"body": ["x", ("y", "\ud800")]}, "body", "lone surrogate"),
    ],
    ids=["surrogate", "surrogate-key", "nul", "nul-in-a-nested-key", "in-a-tuple"],
)
def test_the_python_api_refuses_what_cannot_be_stored_per_key(registered_pipelines, people, override, key, message):
    registered_pipelines(stepkit("anything").step("s", lambda ctx: {"body": "b"}, review=Review()))
    cp = start("anything", {}, user=people.alice).checkpoints.get()
    before = state()
    for decide in (review.edit, review.approve):
        with pytest.raises(InvalidOverride) as refused:
            decide(cp, people.bob, override)
        assert list(refused.value.errors) == [key]
        assert message in refused.value.errors[key][0]
    assert state() == before


def test_the_python_api_refuses_deep_nesting_without_a_recursion_error(people, registered_pipelines):
    registered_pipelines(stepkit("anything").step("s", lambda ctx: {"body": "b"}, review=Review()))
    cp = start("anything", {}, user=people.alice).checkpoints.get()
    deep: list = []
    for _ in range(200_000):
        deep = [deep]
    before = state()
    with pytest.raises(InvalidOverride) as refused:
        review.edit(cp, people.bob, {"body": deep})
    assert list(refused.value.errors) == ["body"]
    assert f"nested more than {MAX_DEPTH} levels" in refused.value.errors["body"][0]
    assert state() == before


def staff(client, user):
    user.is_staff = True
    user.save(update_fields=["is_staff"])
    client.force_login(user)
    return client


def admin_post(client, cp, action, **data):
    return client.post(
        f"{QUEUE}{cp.pk}/change/",
        {"_action": action, "expected_version": cp.version, "comment": "", **data},
        follow=True,
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"body": "a\\u0000b"}', "NUL characters"),
        ('{"bo\\u0000dy": "x"}', "NUL characters"),
        ('{"body": "\\ud800"}', "lone surrogate"),
        ("[" * 200_000 + "]" * 200_000, f"nested more than {MAX_DEPTH} levels"),
        ('{"body": ' + "[" * 900 + "]" * 900 + "}", f"nested more than {MAX_DEPTH} levels"),
        ('{"body": ' + "1" * 5000 + "}", "Enter a valid JSON"),
    ],
    ids=["nul", "nul-in-a-key", "lone-surrogate", "200000-levels", "900-levels", "5000-digit-number"],
)
@pytest.mark.parametrize("action", ["edit", "approve"])
def test_the_admin_json_editor_shows_a_form_error_for_json_it_cannot_store(
    people, client, open_review, text, message, action
):
    cp = start(open_review, {}, user=people.alice).checkpoints.get()
    staff(client, people.bob)
    response = unchanged(lambda: admin_post(client, cp, action, override_data=text))
    assert response.status_code == 200
    assert [str(m) for m in response.context["messages"]] == ["Please correct the errors below."]
    errors = response.context["form"].errors
    assert list(errors) == ["override_data"]
    assert message in errors["override_data"][0]
    assert message.replace('"', "&quot;") in response.content.decode()


def nested_lists(levels):
    value: list = []
    for _ in range(levels - 1):
        value = [value]
    return value


def test_the_admin_json_editor_still_saves_valid_edits(people, client, open_review):
    cp = start(open_review, {}, user=people.alice).checkpoints.get()
    staff(client, people.bob)
    tree = "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1)  # in the object: exactly the limit
    response = admin_post(client, cp, "edit", override_data='{"body": "new 😀", "tree": ' + tree + "}")
    assert [str(m) for m in response.context["messages"]] == ["Saved edits to body, tree."]
    assert Checkpoint.objects.get(pk=cp.pk).override_data == {"body": "new 😀", "tree": nested_lists(MAX_DEPTH - 1)}


def test_one_depth_limit_for_the_admin_and_the_api(people, client, open_review):
    from stepkit_django import jsonchecks
    from stepkit_django.api import parsers

    assert jsonchecks.MAX_DEPTH == parsers.MAX_DEPTH == MAX_DEPTH
    cp = start(open_review, {}, user=people.alice).checkpoints.get()
    staff(client, people.bob)
    bob = client_for(people.bob)

    def api_edit(tree):
        body = '{"override_data": {"tree": ' + tree + "}}"
        return bob.generic("POST", url(cp, "edit"), body, content_type="application/json")

    # One level too many: the admin counts the editor's text, the API the request body.
    admin = unchanged(
        lambda: admin_post(client, cp, "edit", override_data='{"tree": ' + "[" * MAX_DEPTH + "]" * MAX_DEPTH + "}")
    )
    assert f"nested more than {MAX_DEPTH} levels" in admin.context["form"].errors["override_data"][0]
    api = unchanged(lambda: api_edit("[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1)))
    assert api.status_code == 400 and f"nested more than {MAX_DEPTH} levels" in api.json()["detail"]
    # Exactly the limit passes both.
    fits = MAX_DEPTH - 1
    admin = admin_post(client, cp, "edit", override_data='{"tree": ' + "[" * fits + "]" * fits + "}")
    assert [str(m) for m in admin.context["messages"]] == ["Saved edits to tree."]
    assert api_edit("[" * (fits - 1) + "]" * (fits - 1)).status_code == 200
    assert Checkpoint.objects.get(pk=cp.pk).override_data == {"tree": nested_lists(fits - 1)}


# -- hole 12: the size limit bounds the accumulated edits ----------------------------------------------


def limit(n):
    return override_settings(STEPKIT={**django_settings.STEPKIT, "MAX_OVERRIDE_BYTES": n})


def test_the_size_limit_bounds_the_accumulated_edits_not_each_one(people, open_review):
    cp = start(open_review, {}, user=people.alice).checkpoints.get()
    with limit(1000):
        cp = review.edit(cp, people.bob, {"a": "x" * 400})
        cp = review.edit(cp, people.bob, {"b": "x" * 400})
        before = state()
        with pytest.raises(InvalidOverride) as refused:
            review.edit(cp, people.bob, {"c": "x" * 400})
    assert "the limit is 1000 bytes" in refused.value.errors["__all__"][0]
    assert state() == before
    assert set(Checkpoint.objects.get(pk=cp.pk).override_data) == {"a", "b"}
    assert AuditEvent.objects.filter(checkpoint=cp, action="edited").count() == 2


def test_replacing_an_edited_key_counts_once(people, open_review):
    cp = start(open_review, {}, user=people.alice).checkpoints.get()
    with limit(1000):
        for n in range(5):
            cp = review.edit(cp, people.bob, {"a": str(n) * 400})
    assert Checkpoint.objects.get(pk=cp.pk).override_data == {"a": "4" * 400}


def test_validate_override_measures_the_existing_data_with_the_new():
    check = {"context": {}, "editable": None, "schema": None}
    with limit(1000):
        assert validate_override({"c": "x" * 400}, **check) == {"c": "x" * 400}
        assert validate_override({"c": "x" * 400}, existing={"a": "x" * 400}, **check) == {"c": "x" * 400}
        assert validate_override({"a": "y" * 400}, existing={"a": "x" * 400, "b": "x" * 400}, **check)
        with pytest.raises(InvalidOverride) as refused:
            validate_override({"c": "x" * 400}, existing={"a": "x" * 400, "b": "x" * 400}, **check)
    assert list(refused.value.errors) == ["__all__"]


# -- hole 13: the review pages and the API refuse framing ---------------------------------------------


def test_the_admin_review_page_and_the_queue_refuse_framing(people, client):
    cp = paused(people)
    staff(client, people.bob)
    for path in (f"{QUEUE}{cp.pk}/change/", QUEUE):
        response = client.get(path)
        assert response.status_code == 200, path
        assert response.headers["X-Frame-Options"] == "DENY", path
    decided = admin_post(client, cp, "approve", edit__subject="s", edit__body="b")  # the page after a decision
    assert decided.headers["X-Frame-Options"] == "DENY"


def test_the_admin_review_page_refuses_framing_after_a_refused_post(people, client):
    cp = paused(people)
    staff(client, people.bob)
    response = client.post(f"{QUEUE}{cp.pk}/change/", {"_action": "approve", "expected_version": cp.version})
    assert response.status_code == 200
    assert response.headers["X-Frame-Options"] == "DENY"


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("get", "checkpoints/", 200),
        ("get", "runs/", 200),
        ("get", "events/", 200),
        ("get", "pipelines/", 200),
        ("get", "checkpoints/00000000-0000-0000-0000-000000000000/", 404),
        ("get", "checkpoints/?page_size=x", 400),
        ("post", "checkpoints/{pk}/approve/", 200),
    ],
)
def test_every_api_response_refuses_framing(people, method, path, status):
    cp = paused(people)
    response = getattr(client_for(people.bob), method)(f"{API}/{path.format(pk=cp.pk)}", format="json")
    assert response.status_code == status
    assert response.headers["X-Frame-Options"] == "DENY"


def test_an_anonymous_api_response_refuses_framing():
    response = APIClient().get(f"{API}/checkpoints/")
    assert response.status_code == 401
    assert response.headers["X-Frame-Options"] == "DENY"


def test_the_schema_and_the_api_index_refuse_framing(people):
    client = APIClient()
    client.force_authenticate(people.bob)
    for url in ("/api/stepkit/", "/api/stepkit/schema/"):
        assert client.get(url)["X-Frame-Options"] == "DENY", url


def test_python_start_refuses_input_it_cannot_store_and_starts_nothing(people):
    from stepkit_django import CheckpointError, start
    from stepkit_django.models import PipelineRun

    with pytest.raises(CheckpointError, match="surrogate"):
        start("email-approval", {"message": "\ud800", "customer": "c", "to": "t@x"}, user=people.alice)
    assert PipelineRun.objects.count() == 0
