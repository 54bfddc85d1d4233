"""The admin's pipelines pages: steps and review rules, pending work, and the start form built from the schema."""

import re
from datetime import timedelta

import pytest
from django import forms
from django.contrib.auth.models import Permission
from django.urls import reverse

from stepkit_django import Review, start, stepkit
from stepkit_django.models import AuditEvent, Checkpoint, PipelineRun
from tests.testapp.models import SideEffect

pytestmark = pytest.mark.django_db

EMAIL = {"message": "Hello", "customer": "Ada", "to": "ada@example.com"}
INDEX = reverse("admin:stepkit_django_pipelines")
ORDERS = reverse("admin:stepkit_django_pipeline", args=["orders"])
ORDER_SCHEMA = {
    "type": "object",
    "properties": {
        "customer": {"type": "string", "title": "Customer", "description": "Who ordered.", "maxLength": 50},
        "notes": {"type": "string", "format": "textarea"},
        "quantity": {"type": "integer", "title": "Quantity", "minimum": 1, "default": 1},
        "price": {"type": "number", "exclusiveMinimum": 0},
        "express": {"type": "boolean", "title": "Express delivery"},
        "size": {"enum": ["S", "M", "L"], "default": "M"},
        "priority": {"type": "integer", "enum": [1, 2, 3]},
        "extras": {"type": "object"},
    },
    "required": ["customer", "quantity"],
}


def record(ctx):
    SideEffect.objects.create(kind="order", key=ctx["customer"])
    return {"recorded": True}


@pytest.fixture
def orders(registered_pipelines):
    return registered_pipelines(
        stepkit("orders")
        .step("price", lambda ctx: {"total": ctx["quantity"] * 10})
        .step(
            "approve",
            record,
            review=Review(
                title="Large orders need a manager",
                when=lambda ctx: ctx["quantity"] > 10,
                assign_to_group="managers",
                assign_to_user="bob",
                approvals_required=2,
                timeout=timedelta(days=2),
                on_timeout="escalate",
                escalate_to_group="editors",
                editable=["quantity"],
            ),
        )
        .step("ship", lambda ctx: {"shipped": True}),
        input_schema=ORDER_SCHEMA,
    )


def login(client, user, *codenames):
    user.is_staff = True
    user.save(update_fields=["is_staff"])
    user.user_permissions.add(
        *Permission.objects.filter(content_type__app_label="stepkit_django", codename__in=codenames)
    )
    client.force_login(user)
    return client


@pytest.fixture
def starter(people, client):
    """bob: a reviewer (editors) who may also start runs."""
    return login(client, people.bob, "add_pipelinerun")


@pytest.fixture
def reviewer(people, client):
    """carol: a reviewer (editors) who may not start runs."""
    return login(client, people.carol)


def written():
    """Everything a refused start must leave as it was."""
    return (
        PipelineRun.objects.count(),
        AuditEvent.objects.count(),
        Checkpoint.objects.count(),
        SideEffect.objects.count(),
    )


def text(response):
    return re.sub(r"\s+", " ", response.content.decode())


def messages_of(response):
    return [str(m) for m in response.context["messages"]]


# -- reading --------------------------------------------------------------------------------------------


def test_the_index_lists_every_registered_pipeline_with_its_pending_work(people, starter, orders):
    start("email-approval", EMAIL, user=people.alice)
    start("email-approval", EMAIL, user=people.alice)
    response = starter.get(INDEX)
    assert response.status_code == 200
    rows = {row["name"]: row for row in response.context["pipelines"]}
    assert {"orders", "email-approval", "payment-approval"} <= set(rows)
    assert rows["email-approval"]["pending"] == 2 and rows["orders"]["pending"] == 0
    assert rows["orders"]["steps"] == 3 and rows["orders"]["reviews"] == 1
    assert rows["orders"]["startable"] and not rows["email-approval"]["startable"]
    html = response.content.decode()
    assert f'href="{ORDERS}"' in html
    assert "/admin/stepkit_django/checkpoint/?pipeline_name=email-approval" in html


def test_the_page_lists_the_steps_in_order_with_the_rules_of_those_that_pause(starter, orders):
    response = starter.get(ORDERS)
    assert response.status_code == 200
    assert [s["path"] for s in response.context["steps"]] == ["price", "approve", "ship"]
    assert [bool(s["review"]) for s in response.context["steps"]] == [False, True, False]
    rules = dict(response.context["steps"][1]["review"])
    assert rules == {
        "Pauses": "only sometimes (a condition decides)",
        "Assigned to": "group managers, user bob",
        "Permission": "stepkit_django.review_checkpoint",
        "Approvals required": "2",
        "Four-eyes rule": "the person who started the run may not review it",
        "Deadline": "2 days, then it goes to group editors",
        "Editable": "quantity",
    }
    page = text(response)
    assert "Large orders need a manager" in page
    assert page.index("price") < page.index("approve") < page.index("ship")


def test_rules_chosen_by_code_and_nested_steps_are_described(starter, registered_pipelines):
    from stepkit_django import otherwise, when

    registered_pipelines(
        stepkit("routed").branch_on(
            "route",
            when(
                lambda ctx: ctx["risky"],
                lambda b: b.step("hold", review=Review(assign_to_user=lambda ctx: [])),
                name="risky",
            ),
            otherwise(lambda b: b.step("publish")),
        )
    )
    response = starter.get(reverse("admin:stepkit_django_pipeline", args=["routed"]))
    steps = {s["path"]: s for s in response.context["steps"]}
    assert list(steps) == ["route", "route/risky/hold", "route/default/publish"]
    assert steps["route/risky/hold"]["indent"] > steps["route"]["indent"]
    rules = dict(steps["route/risky/hold"]["review"])
    assert rules["Assigned to"] == "people chosen from the run's data when it pauses"
    assert rules["Pauses"] == "always" and rules["Deadline"] == "none" and rules["Editable"] == "any value"


def test_the_page_shows_the_pending_count_and_links_the_oldest_item_and_the_queue(people, starter):
    first = start("email-approval", EMAIL, user=people.alice)
    start("email-approval", EMAIL, user=people.alice)
    response = starter.get(reverse("admin:stepkit_django_pipeline", args=["email-approval"]))
    assert response.context["pending"] == 2
    oldest = first.checkpoints.get()
    html = response.content.decode()
    assert f'href="/admin/stepkit_django/checkpoint/{oldest.pk}/change/" id="oldest-link"' in html
    assert 'href="/admin/stepkit_django/checkpoint/?pipeline_name=email-approval" id="queue-link"' in html
    assert response.context["steps"][0]["pending"] == 2  # at the step that paused


def test_pending_work_counts_only_what_the_reader_may_see_in_the_queue(people, client, registered_pipelines):
    registered_pipelines(stepkit("managed").step("s", review=Review(assign_to_group="managers")))
    start("managed", {}, user=people.alice)
    bob = login(client, people.bob)  # an editor: not in the managers group
    rows = {row["name"]: row for row in bob.get(INDEX).context["pipelines"]}
    assert rows["managed"]["pending"] == 0


def test_the_pages_are_linked_from_the_queue_the_overview_and_the_runs(starter):
    for page in (
        reverse("admin:stepkit_django_checkpoint_changelist"),
        reverse("admin:stepkit_django_checkpoint_overview"),
        reverse("admin:stepkit_django_pipelinerun_changelist"),
    ):
        assert f'href="{INDEX}"' in starter.get(page).content.decode(), page


def test_an_unknown_pipeline_is_a_404(starter):
    assert starter.get(reverse("admin:stepkit_django_pipeline", args=["nope"])).status_code == 404


# -- who may ---------------------------------------------------------------------------------------------


def test_a_staff_user_without_the_permission_is_refused_and_not_shown_the_link(people, client, orders):
    eve = login(client, people.eve)  # staff, in the editors group, neither reviewer nor starter
    assert eve.get(INDEX).status_code == 403
    assert eve.get(ORDERS).status_code == 403
    before = written()
    assert eve.post(ORDERS, {"input-customer": "Ada", "input-quantity": "1"}).status_code == 403
    assert written() == before


def test_a_reviewer_reads_the_rules_but_gets_no_start_form_and_cannot_post_one(people, reviewer, orders):
    response = reviewer.get(ORDERS)
    assert response.status_code == 200 and response.context["form"] is None
    assert 'id="start-form"' not in response.content.decode()
    assert "You may not start runs" in text(response)
    before = written()
    assert reviewer.post(ORDERS, {"input-customer": "Ada", "input-quantity": "1"}).status_code == 403
    assert written() == before


def test_someone_who_only_starts_runs_reaches_the_pages_from_their_runs(people, client, orders):
    alice = login(client, people.alice, "add_pipelinerun")  # not a reviewer
    assert alice.get(ORDERS).context["form"] is not None
    runs = alice.get(reverse("admin:stepkit_django_pipelinerun_changelist"))
    assert runs.status_code == 200 and f'href="{INDEX}"' in runs.content.decode()


def test_a_pipeline_without_input_schema_offers_no_form(starter):
    url = reverse("admin:stepkit_django_pipeline", args=["email-approval"])
    response = starter.get(url)
    assert response.context["form"] is None and "declares no input schema" in text(response)
    assert starter.post(url, {"input-message": "Hi"}).status_code == 403
    assert PipelineRun.objects.count() == 0


# -- the start form -------------------------------------------------------------------------------------


def test_the_start_form_is_typed_from_the_schema(starter, orders):
    form = starter.get(ORDERS).context["form"]
    fields = form.fields
    assert isinstance(fields["customer"], forms.CharField) and isinstance(fields["customer"].widget, forms.TextInput)
    assert fields["customer"].required and fields["customer"].max_length == 50
    assert (fields["customer"].label, fields["customer"].help_text) == ("Customer", "Who ordered.")
    assert isinstance(fields["notes"].widget, forms.Textarea) and not fields["notes"].required
    assert isinstance(fields["quantity"], forms.IntegerField) and fields["quantity"].initial == 1
    assert fields["quantity"].min_value == 1 and fields["quantity"].required
    assert isinstance(fields["price"], forms.FloatField)
    assert isinstance(fields["express"], forms.BooleanField) and fields["express"].label == "Express delivery"
    assert [c[0] for c in fields["size"].choices] == ["", "S", "M", "L"] and fields["size"].initial == "M"
    assert isinstance(fields["extras"], forms.JSONField)
    assert list(fields) == list(ORDER_SCHEMA["properties"])


def test_labels_and_help_texts_are_tied_to_their_inputs(starter, orders):
    html = starter.get(ORDERS).content.decode()
    assert '<label for="id_input-customer" class="required">Customer:</label>' in html
    assert re.search(r'<input[^>]*name="input-customer"[^>]*aria-describedby="id_input-customer_helptext"', html)
    assert 'id="id_input-customer_helptext"' in html
    assert re.search(r'<input type="checkbox" name="input-express"[^>]*id="id_input-express"', html)
    assert '<label for="id_input-express">Express delivery:</label>' in html
    assert '<select name="input-size" id="id_input-size">' in html


def test_starting_a_run_from_the_page_keeps_the_types_and_links_the_run(people, starter, orders):
    body = {
        "input-customer": "Ada",
        "input-quantity": "3",
        "input-price": "9.5",
        "input-express": "on",
        "input-size": "L",
        "input-priority": "2",
        "input-extras": '{"gift": true}',
    }
    response = starter.post(ORDERS, body, follow=True)
    run = PipelineRun.objects.get()
    assert response.redirect_chain == [(ORDERS, 302)]
    assert run.input == {
        "customer": "Ada",
        "quantity": 3,
        "price": 9.5,
        "express": True,
        "size": "L",
        "priority": 2,
        "extras": {"gift": True},
    }
    assert type(run.input["quantity"]) is int and type(run.input["priority"]) is int
    assert run.started_by == people.bob and run.status == "completed"
    link = f'<a href="/admin/stepkit_django/pipelinerun/{run.pk}/change/">{str(run.pk)[:8]}</a>'
    assert messages_of(response) == [f"The run {link} was started. Status: Completed."]
    assert link in response.content.decode()  # shown as a link, not escaped


def test_optional_fields_left_empty_are_left_out_of_the_input(starter, orders):
    starter.post(ORDERS, {"input-customer": "Ada", "input-quantity": "12"})
    run = PipelineRun.objects.get()
    assert run.input == {"customer": "Ada", "quantity": 12, "express": False}
    assert run.status == "paused"  # over 10: a manager's approval


def test_bad_input_shows_the_errors_next_to_the_fields_and_writes_nothing(starter, orders):
    before = written()
    response = starter.post(ORDERS, {"input-customer": "", "input-quantity": "many", "input-size": "XL"})
    assert response.status_code == 200
    errors = response.context["form"].errors
    assert set(errors) == {"customer", "quantity", "size"}
    assert "The run was not started; see the errors below." in messages_of(response)
    assert written() == before


def test_what_only_the_schema_refuses_is_shown_on_its_field_too(starter, orders):
    before = written()
    response = starter.post(ORDERS, {"input-customer": "Ada", "input-quantity": "1", "input-price": "0"})
    assert response.status_code == 200
    assert response.context["form"].errors == {"price": ["Enter a value greater than 0."]}
    assert 'id="field-price"' in response.content.decode()
    assert written() == before


def test_a_value_that_cannot_be_stored_is_an_error_above_the_form(starter, orders):
    before = written()
    response = starter.post(
        ORDERS, {"input-customer": "Ada", "input-quantity": "1", "input-extras": '{"a": "\\u0000"}'}
    )
    assert response.status_code == 200
    assert "NUL" in " ".join(response.context["form"].non_field_errors())
    assert written() == before


def test_the_pages_may_not_be_framed(starter, orders):
    assert starter.get(INDEX)["X-Frame-Options"] == "DENY"
    assert starter.get(ORDERS)["X-Frame-Options"] == "DENY"
