"""API fuzzing with schemathesis against the project's own OpenAPI schema: no 5xx, responses conform."""

import pytest
import schemathesis
from django.core.wsgi import get_wsgi_application
from hypothesis import HealthCheck, settings
from rest_framework.authtoken.models import Token
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from stepkit_django import start

# No 5xx, documented status codes and content types, bodies that match the schema. (Whether every
# schema-violating request is refused is not checked: an empty filter value means "no filter", as in
# django-filter; unknown booleans, page sizes and ordering fields are refused, see test_api.py.)
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]

schema = schemathesis.openapi.from_wsgi("/api/stepkit/schema/?format=json", get_wsgi_application())


@pytest.fixture
def tokens(people):
    start("email-approval", {"message": "m", "customer": "c", "to": "t"}, user=people.alice)
    return {
        "reviewer": Token.objects.create(user=people.bob).key,
        "no permission": Token.objects.create(user=people.eve).key,
    }


@pytest.mark.django_db(transaction=True)
@schema.parametrize()
@settings(max_examples=15, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@pytest.mark.parametrize("who", ["reviewer", "no permission"])
def test_api_conforms_to_its_schema(case, tokens, who):
    case.call_and_validate(headers={"Authorization": f"Token {tokens[who]}"}, checks=CHECKS)
