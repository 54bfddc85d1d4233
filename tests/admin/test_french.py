"""The review queue in French: what an editor or a manager whose browser asks for French sees.

The test project has no LocaleMiddleware; these tests add it, as the example project has it
(docs/how-to/translate.md), and send ``Accept-Language: fr``.
"""

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone, translation
from rest_framework.test import APIClient

from stepkit_django import Review, review, start, stepkit
from stepkit_django.models import AuditEvent, Checkpoint
from stepkit_django.sentences import tell

pytestmark = pytest.mark.django_db

EMAIL = {"message": "Hello", "customer": "Ada", "to": "ada@example.com"}
QUEUE = "/admin/stepkit_django/checkpoint/"
LOCALE_MIDDLEWARE = "django.middleware.locale.LocaleMiddleware"


@pytest.fixture
def french(settings):
    """LocaleMiddleware where Django's docs put it: after the sessions, before CommonMiddleware."""
    middleware = list(settings.MIDDLEWARE)
    middleware.insert(middleware.index("django.contrib.sessions.middleware.SessionMiddleware") + 1, LOCALE_MIDDLEWARE)
    settings.MIDDLEWARE = middleware
    yield
    translation.deactivate()  # the middleware leaves its language active in this thread


def browser(user, language="fr"):
    """A logged-in staff member's browser asking for ``language``."""
    user.is_staff = True
    user.save(update_fields=["is_staff"])
    client = Client(headers={"accept-language": language})
    client.force_login(user)
    return client


def paused(people, n=1):
    runs = [start("email-approval", EMAIL, user=people.alice) for _ in range(n)]
    return [run.checkpoints.get() for run in runs]


def test_the_queue_shows_its_title_columns_filters_and_actions_in_french(people, french):
    paused(people, 2)
    response = browser(people.bob).get(QUEUE)
    assert response.status_code == 200 and response["Content-Language"] == "fr"
    html = response.content.decode()
    assert "<h1>File de relecture</h1>" in html
    for header in ("Titre", "En attente depuis", "Échéance dans", "Attribué à", "Approbations"):
        assert f">{header}</" in html, header
    assert "Approuver les éléments sélectionnés" in html and "Rejeter les éléments sélectionnés" in html
    assert "Par statut" in html and "Par processus" in html and ">En attente</a>" in html  # filters
    assert "Vue d’ensemble de la file" in html and "Rechercher dans la file" in html
    assert ">Relire le suivant</button>" in html
    assert "Review queue" not in html and "Approve selected items" not in html


def test_the_queue_stays_in_english_for_an_english_browser(people, french):
    paused(people)
    html = browser(people.bob, "en").get(QUEUE).content.decode()
    assert "<h1>Review queue</h1>" in html and "Approve selected items" in html
    assert "File de relecture" not in html


def test_a_site_whose_language_is_french_shows_the_queue_in_french_without_the_middleware(people, settings):
    settings.LANGUAGE_CODE = "fr"
    paused(people)
    html = browser(people.bob, "en").get(QUEUE).content.decode()
    assert "<h1>File de relecture</h1>" in html and "Approuver les éléments sélectionnés" in html


def test_the_review_page_shows_french_buttons_and_a_french_audit_trail(people, french):
    (cp,) = paused(people)
    review.claim(cp, people.bob)
    response = browser(people.bob).get(f"{QUEUE}{cp.pk}/change/")
    html = response.content.decode()
    for button in ("Libérer", "Enregistrer les modifications", "Approuver et reprendre", "Rejeter"):
        assert f">{button}</button>" in html, button
    assert "Journal d’audit" in html and "Ce qui s’est passé" in html
    assert "Mise en pause à l’étape generate pour relecture par editors" in html
    assert "Pris en charge par bob" in html
    assert "Approve and resume" not in html and "Audit trail" not in html


def test_a_decision_in_french_says_so_in_french(people, french):
    (cp,) = paused(people)
    bob = browser(people.bob)
    page = f"{QUEUE}{cp.pk}/change/"
    response = bob.post(page, {"_action": "claim", "expected_version": cp.version}, follow=True)
    assert [str(m) for m in response.context["messages"]] == ["Vous avez pris en charge cet élément."]
    untouched = {f"edit__{key}": cp.context[key] for key in ("subject", "body")}
    response = bob.post(page, {"_action": "approve", "expected_version": cp.version + 1, **untouched}, follow=True)
    said = [str(m) for m in response.context["messages"]]
    assert said[0] == "« Email approval: generate » approuvé : l’exécution continue."
    (cp,) = paused(people)
    page = f"{QUEUE}{cp.pk}/change/"
    bob.post(page, {"_action": "claim", "expected_version": cp.version}, follow=True)  # its message read
    review.reject(cp, people.bob)  # in another tab, say
    response = bob.post(page, {"_action": "claim", "expected_version": cp.version + 1}, follow=True)
    assert [str(m) for m in response.context["messages"]] == ["Cet élément a déjà été rejeté par bob."]


def test_the_earlier_revisions_are_listed_with_french_punctuation(people, french):
    # French puts a (non-breaking) space before a colon, as everywhere else on the page ("Commentaire :").
    [cp] = paused(people)
    review.request_changes(cp, people.bob, "Plus court")
    second = Checkpoint.objects.get(status="pending")
    html = browser(people.carol).get(f"{QUEUE}{second.pk}/change/").content.decode()
    history = html[html.index('id="revisions"') :]
    assert "Révision 2 : les modifications demandées auparavant" in history
    assert '\xa0: <q class="stepkit-text">Plus court</q>' in history


def test_the_bulk_confirmation_page_is_in_french(people, french):
    cps = paused(people, 2)
    data = {"action": "approve_selected", "_selected_action": [str(cp.pk) for cp in cps]}
    data.update({f"version-{cp.pk}": str(cp.version) for cp in cps})
    response = browser(people.bob).post(QUEUE, data)
    assert response.status_code == 200
    html = response.content.decode()
    assert "Approuver ces éléments ?" in html and "Vous allez approuver ces 2 éléments :" in html
    assert 'value="Oui, les approuver"' in html and "Non, revenir à la page précédente" in html
    assert Checkpoint.objects.filter(status="pending").count() == 2  # the confirmation decides nothing


def test_an_automatic_approval_is_told_in_french_with_the_systems_note(people, french, registered_pipelines):
    timed = Review(timeout=timedelta(minutes=5), on_timeout="approve")
    registered_pipelines(stepkit("timed-fr").step("check", lambda c: {"ok": True}, review=timed).step("done", dict))
    cp = start("timed-fr", {}, user=people.alice).checkpoints.get()
    Checkpoint.objects.filter(pk=cp.pk).update(expires_at=timezone.now() - timedelta(minutes=1))
    assert review.expire_due() == 1
    assert AuditEvent.objects.get(action="approved").note == "Approved on timeout"  # stored in English
    html = browser(people.root).get(f"{QUEUE}{cp.pk}/change/").content.decode()
    assert "Approuvé automatiquement à l’échéance" in html and "Approuvé à l’échéance" in html
    assert "Décidé : Approuvé" in html and "Par le système" in html


def test_an_event_is_told_in_the_language_active_when_it_is_read(people):
    (cp,) = paused(people)
    event = AuditEvent.objects.select_related("actor").get(checkpoint=cp, action="paused")
    with translation.override("fr"):
        french = tell(event, full=True).sentence
    assert french == "Mise en pause à l’étape generate pour relecture par editors"
    assert tell(event, full=True).sentence == "Paused at step generate for review by editors"


def test_an_api_error_is_in_french_when_the_request_asks_for_french(people, french, registered_pipelines):
    registered_pipelines(stepkit("reasons-fr").step("pay", dict, review=Review(require_reject_reason=True)))
    cp = start("reasons-fr", {}, user=people.alice).checkpoints.get()
    client = APIClient(headers={"accept-language": "fr"})
    client.force_authenticate(people.bob)
    response = client.post(f"/api/stepkit/checkpoints/{cp.pk}/reject/", {"comment": ""}, format="json")
    assert response.status_code == 400
    assert response.json() == {"comment": ["Dites pourquoi vous le rejetez : le motif est obligatoire."]}
    review.reject(cp, people.carol, "Mauvais bénéficiaire")
    response = client.post(f"/api/stepkit/checkpoints/{cp.pk}/approve/", {}, format="json")
    assert response.status_code == 409
    assert response.json() == {"detail": "Cet élément a déjà été rejeté par carol."}
    english = APIClient()
    english.force_authenticate(people.bob)
    response = english.post(f"/api/stepkit/checkpoints/{cp.pk}/approve/", {}, format="json")
    assert response.json() == {"detail": "This checkpoint was already rejected by carol."}
