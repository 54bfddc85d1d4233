"""The inbox in a project without ``django.contrib.admin``: nothing of it imports the admin."""

import ast
from pathlib import Path

import pytest
from django.test import modify_settings, override_settings

from stepkit_django import start
from tests.test_architecture import imports_of, modules

PACKAGE = Path(__file__).resolve().parents[2] / "stepkit_django"


def reachable(start_at: str) -> set[str]:
    known = modules()
    seen, todo = set(), [start_at]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo.extend(imports_of(name, known[name], known))
    return seen


@pytest.mark.parametrize("module", ["stepkit_django.inbox.views", "stepkit_django.inbox.urls"])
def test_the_inbox_imports_nothing_of_the_admin(module):
    reached = reachable(module)
    assert "stepkit_django.reviewing.page" in reached
    assert not [name for name in reached if name.startswith("stepkit_django.admin")]
    for name in reached:
        path = modules()[name]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                assert not (node.module or "").startswith("django.contrib.admin"), (name, node.module)
            if isinstance(node, ast.Import):
                assert not any(a.name.startswith("django.contrib.admin") for a in node.names), name


@pytest.mark.django_db
@override_settings(ROOT_URLCONF="tests.inbox.inbox_only_urls", LOGIN_URL="/login/")
@modify_settings(INSTALLED_APPS={"remove": ["django.contrib.admin"]})
def test_a_project_without_the_admin_reviews_in_the_inbox(client, people):
    from django.apps import apps

    from stepkit_django.models import Checkpoint

    assert not apps.is_installed("django.contrib.admin")
    run = start("email-approval", {"message": "m", "customer": "Ada", "to": "a@example.com"}, user=people.alice)
    cp = run.checkpoints.get()
    assert cp.get_absolute_url() == f"/review/{cp.pk}/"
    client.force_login(people.bob)
    assert client.get("/review/").status_code == 200
    assert client.get(f"/review/{cp.pk}/").status_code == 200
    data = {"_action": "approve", "expected_version": cp.version, "comment": "", **{
        f"edit__{key}": cp.context[key] for key in ("subject", "body")}}  # fmt: skip
    response = client.post(f"/review/{cp.pk}/", data, follow=True)
    assert response.status_code == 200
    assert Checkpoint.objects.get(pk=cp.pk).status == "approved"
