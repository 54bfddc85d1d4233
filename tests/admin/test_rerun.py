"""The run page's "Rerun from here" buttons: shown to those who may, a POST that starts the new run."""

import pytest
from django.contrib.auth.models import Permission, User
from django.urls import reverse

from stepkit_django import review
from stepkit_django.models import AuditEvent, PipelineRun
from stepkit_django.status import AuditAction, RunStatus

from .test_admin import EMAIL, messages_of, staff

pytestmark = pytest.mark.django_db


def run_page(run):
    return reverse("admin:stepkit_django_pipelinerun_change", args=[run.pk])


def rerun_url(run, checkpoint):
    return reverse("admin:stepkit_django_pipelinerun_rerun", args=[run.pk, checkpoint.pk])


@pytest.fixture
def approved(people):
    from stepkit_django import start

    staff(people.alice, people.bob, people.dave)
    # Alice starts runs (so she sees the runs pages): her runs are the ones she may rerun.
    people.alice.user_permissions.add(Permission.objects.get(codename="add_pipelinerun"))
    people.alice = User.objects.get(pk=people.alice.pk)
    run = start("email-approval", EMAIL, user=people.alice)
    cp = run.checkpoints.get()
    review.approve(cp, people.bob)
    return run, cp


def test_the_starter_sees_a_rerun_button_for_each_review_item_and_a_reviewer_does_not(people, approved, client):
    run, cp = approved
    client.force_login(people.alice)
    page = client.get(run_page(run)).content.decode()
    assert "Rerun from here" in page
    assert rerun_url(run, cp) in page
    assert 'name="csrfmiddlewaretoken"' in page
    client.force_login(people.bob)  # sees the run (it had an item in his queue), may not rerun it
    response = client.get(run_page(run))
    assert response.status_code == 200
    assert "Rerun from here" not in response.content.decode()


def test_posting_the_button_starts_the_rerun_and_links_to_it(people, approved, client):
    run, cp = approved
    client.force_login(people.alice)
    response = client.post(rerun_url(run, cp), follow=True)
    new = PipelineRun.objects.exclude(pk=run.pk).get()
    assert (new.forked_from, new.status, new.started_by) == (cp, RunStatus.COMPLETED, people.alice)
    assert response.redirect_chain[-1][0] == run_page(new)
    [message] = messages_of(response)
    assert f'<a href="{run_page(new)}">{str(new.pk)[:8]}</a>' in message
    page = response.content.decode()
    assert "Rerun of" in page
    assert reverse("admin:stepkit_django_checkpoint_change", args=[cp.pk]) in page
    assert run_page(run) in page
    assert AuditEvent.objects.filter(run=run, action=AuditAction.RUN_FORKED, actor=people.alice).exists()


def test_a_run_manager_may_rerun_from_the_admin(people, approved, client):
    run, cp = approved
    people.dave.user_permissions.add(Permission.objects.get(codename="manage_pipelinerun"))
    client.force_login(User.objects.get(pk=people.dave.pk))
    assert "Rerun from here" in client.get(run_page(run)).content.decode()
    client.post(rerun_url(run, cp))
    assert PipelineRun.objects.filter(forked_from=cp, started_by=people.dave).exists()


def test_a_refused_rerun_says_why_and_starts_nothing(people, approved, client):
    run, cp = approved
    client.force_login(people.bob)
    response = client.post(rerun_url(run, cp), follow=True)
    assert PipelineRun.objects.count() == 1
    assert any("started the run" in m for m in messages_of(response))


def test_the_rerun_url_takes_only_a_post(people, approved, client):
    run, cp = approved
    client.force_login(people.alice)
    assert client.get(rerun_url(run, cp)).status_code == 405
    assert PipelineRun.objects.count() == 1


def test_a_run_page_of_a_run_started_anew_says_nothing_of_reruns(people, approved, client):
    run, _ = approved
    client.force_login(people.alice)
    assert "Rerun of" not in client.get(run_page(run)).content.decode()


def test_a_rerun_url_with_an_id_that_is_not_one_is_not_an_error(people, approved, client):
    run, cp = approved
    client.force_login(people.alice)
    url = rerun_url(run, cp).replace(str(cp.pk), "not-an-id")
    response = client.post(url, follow=True)  # no such page: the admin says so (it was a 500)
    assert response.status_code in (200, 404)
    assert PipelineRun.objects.count() == 1


def test_the_rerun_buttons_of_two_revisions_of_a_step_are_told_apart_by_their_names(people, client):
    # A screen reader reads a button's aria-label alone: two revisions of one step need two names.
    import re

    from stepkit_django import start

    staff(people.alice)
    people.alice.user_permissions.add(Permission.objects.get(codename="add_pipelinerun"))
    run = start("email-approval", EMAIL, user=people.alice)
    review.request_changes(run.checkpoints.get(), people.bob, "Shorter")
    client.force_login(User.objects.get(pk=people.alice.pk))
    page = client.get(run_page(run)).content.decode()
    labels = re.findall(r'aria-label="(Rerun from step [^"]*)"', page)
    step = run.checkpoints.first().step
    assert labels == [f"Rerun from step {step}", f"Rerun from step {step}, revision 2"]


def test_the_run_page_names_each_review_item_with_its_step(people, approved, client):
    run, cp = approved
    client.force_login(people.root)
    html = client.get(f"/admin/stepkit_django/pipelinerun/{run.pk}/change/").content.decode()
    assert '<th scope="col">Review item</th>' in html
    assert f'<span class="help">step {cp.step}</span>' in html
