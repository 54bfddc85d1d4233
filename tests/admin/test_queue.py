"""The queue as reviewers read it: titles first, summaries under them, a search that finds them, pending first."""

import re

import pytest
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext

from stepkit_django import Review, review, start, stepkit
from stepkit_django.models import Checkpoint

from .test_admin import QUEUE, rows, staff

pytestmark = pytest.mark.django_db

PAYMENTS = [
    {"payee": "ACME Ltd", "amount": 1200, "invoice_no": "INV-1", "memo": "spring catalogue"},
    {"payee": "Globex", "amount": 1200, "invoice_no": "INV-2", "memo": "licences"},
    {"payee": "Initech", "amount": 9400, "invoice_no": "INV-3", "memo": "printers"},
]


@pytest.fixture
def payments(people, registered_pipelines):
    registered_pipelines(
        stepkit("titled-payment").step(
            "check",
            lambda ctx: {},
            review=Review(title="Pay {payee} {amount} EUR", summary=["invoice_no", "amount"]),
        )
    )
    return [start("titled-payment", data, user=people.alice) for data in PAYMENTS]


@pytest.fixture
def bob(people, client):
    staff(people.bob)
    client.force_login(people.bob)
    return client


def found(client, query):
    return [cp.title for cp in rows(client.get(QUEUE + query))]


def test_the_page_is_called_review_queue_and_the_title_is_the_first_column_with_the_summary(payments, bob):
    response = bob.get(QUEUE)
    html = response.content.decode()
    assert "<h1>Review queue</h1>" in html and "<title>Review queue |" in html
    assert "Select review item to change" not in html
    headings = re.findall(r'<th scope="col" class="([^"]*)"', html)
    columns = [next(c for c in heading.split() if "column" in c) for heading in headings]
    # After the selection checkbox; one status (pending) needs no column; the claim is under the assignees.
    assert columns == [
        "action-checkbox-column",
        "column-item",
        "column-age",
        "column-expires_in",
        "column-assigned_to",
        "column-approvals",
    ]
    first_row = html[html.index('<tr><td class="action-checkbox">') : html.index("</tr>", html.index("INV-1"))]
    assert ">Pay ACME Ltd 1200 EUR<br>" in first_row  # the whole cell links to the review page
    assert '<span class="stepkit-summary-item stepkit-where">titled-payment · check</span>' in first_row
    assert '<span class="stepkit-summary-item">Invoice no: <strong>INV-1</strong></span>' in first_row
    assert "Review items" in bob.get("/admin/").content.decode()  # the admin index says what it holds


def test_under_all_the_status_has_a_column_and_a_claim_shows_under_the_assignees(people, payments, bob):
    review.claim(payments[0].checkpoints.get(), people.carol)
    html = bob.get(QUEUE + "?status=all").content.decode()
    assert 'class="sortable column-status"' in html
    assert '<span class="stepkit-claim">claimed by carol</span>' in html


def test_the_approvals_column_stays_narrow(payments, bob):
    html = bob.get(QUEUE).content.decode()
    narrow = r"th\.column-approvals, #result_list td\.field-approvals,[^{]*\{ width: 1%; white-space: nowrap;"
    assert re.search(narrow, html)


def test_search_finds_titles_and_summaries_in_any_case(payments, bob):
    assert found(bob, "?q=globex") == ["Pay Globex 1200 EUR"]
    assert found(bob, "?q=inv-3") == ["Pay Initech 9400 EUR"]  # in the summary only
    assert found(bob, "?q=1200") == ["Pay ACME Ltd 1200 EUR", "Pay Globex 1200 EUR"]
    assert found(bob, "?q=nobody") == []


def test_search_finds_a_run_by_its_id(payments, bob):
    assert [cp.run_id for cp in rows(bob.get(QUEUE + f"?q={payments[1].pk}"))] == [payments[1].pk]
    assert [cp.run_id for cp in rows(bob.get(QUEUE + f"?q={payments[1].pk.hex}"))] == [payments[1].pk]


def test_the_context_is_searched_only_when_the_setting_says_so(payments, bob):
    assert found(bob, "?q=catalogue") == []  # in the context, not in the title or the summary
    with override_settings(STEPKIT={"SEARCH_CONTEXT": True}):
        response = bob.get(QUEUE + "?q=catalogue")
        assert [cp.title for cp in rows(response)] == ["Pay ACME Ltd 1200 EUR"]
        assert "text anywhere in the data" in response.content.decode()
    assert "Words of a title or a summary, or a run id." in bob.get(QUEUE).content.decode()


def test_the_search_reads_no_context(payments, bob):
    with CaptureQueriesContext(connection) as queries:
        assert found(bob, "?q=globex") == ["Pay Globex 1200 EUR"]
    searches = [q["sql"] for q in queries if "LIKE" in q["sql"]]
    assert searches and not [sql for sql in searches if '"context"' in sql]


def test_a_very_long_search_is_cut_with_a_message(payments, bob):
    response = bob.get(QUEUE + "?q=" + "Globex" + "x" * 300)
    assert [str(m) for m in response.context["messages"]] == ["Searched for the first 200 characters only."]


def test_under_all_pending_items_come_first_then_oldest_first(people, payments, bob):
    decided = payments[0].checkpoints.get()
    review.reject(decided, people.carol)
    assert found(bob, "?status=all") == ["Pay Globex 1200 EUR", "Pay Initech 9400 EUR", "Pay ACME Ltd 1200 EUR"]
    assert found(bob, "") == ["Pay Globex 1200 EUR", "Pay Initech 9400 EUR"]  # pending only, oldest first
    # A column the reviewer sorts by wins.
    assert found(bob, "?status=all&o=1") == ["Pay ACME Ltd 1200 EUR", "Pay Globex 1200 EUR", "Pay Initech 9400 EUR"]


def test_the_bulk_confirmation_and_its_messages_name_the_items_by_their_titles(people, payments, bob):
    from .test_bulk import bulk, confirmed, messages_of

    cps = [run.checkpoints.get() for run in payments[:2]]
    page = bob.post(QUEUE, bulk("approve_selected", cps)).content.decode()
    assert "Pay ACME Ltd 1200 EUR</a>" in page and "Pay Globex 1200 EUR</a>" in page
    review.claim(cps[1], people.carol)
    listed = [Checkpoint.objects.get(pk=cp.pk) for cp in cps]
    done, refused = messages_of(bob.post(QUEUE, confirmed("approve_selected", listed), follow=True))
    assert done == "Approved 1 item: Pay ACME Ltd 1200 EUR."
    assert refused.startswith("1 item was not decided: Pay Globex 1200 EUR: ")


def test_the_selection_checkbox_is_labelled_with_the_title(payments, bob):
    html = bob.get(QUEUE).content.decode()
    assert 'aria-label="Select this object for an action - Pay ACME Ltd 1200 EUR (Pending)"' in html


@pytest.mark.postgres
def test_on_postgresql_a_title_or_summary_search_is_served_by_the_trigram_indexes(payments):
    queryset = Checkpoint.objects.search("globex")
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")  # a handful of rows: make the planner show its index
        sql, params = queryset.query.sql_with_params()
        cursor.execute(f"EXPLAIN {sql}", params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "stepkit_cp_title_trgm" in plan and "stepkit_cp_summary_trgm" in plan


@pytest.mark.postgres
def test_on_postgresql_the_first_page_under_all_is_read_from_the_pending_first_index(payments, bob):
    with CaptureQueriesContext(connection) as queries:
        assert len(rows(bob.get(QUEUE + "?status=all"))) == 3
    # The page's rows (three: the changelist reads them without a LIMIT), ordered pending first.
    page = next(q["sql"] for q in queries if "ORDER BY CASE WHEN" in q["sql"] and "COUNT(*)" not in q["sql"])
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL enable_sort = off")  # a handful of rows: make the planner show its index
        cursor.execute(f"EXPLAIN {page}")
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "stepkit_cp_pending_first" in plan, plan


def test_the_pipelines_page_shows_a_title_rule_as_written_and_nothing_for_a_callable(bob, registered_pipelines):
    registered_pipelines(
        stepkit("two-titles")
        .step("first", lambda ctx: {}, review=Review(title="Pay {payee}"))
        .step("second", lambda ctx: {}, review=Review(title=lambda ctx: "computed"))
    )
    response = bob.get("/admin/stepkit_django/pipelinerun/pipelines/two-titles/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "<strong>Pay {payee}</strong>" in html
    assert "lambda" not in html and "function" not in html
