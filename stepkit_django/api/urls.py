"""Mount with ``path("api/stepkit/", include("stepkit_django.api.urls"))``.

``schema/`` serves the OpenAPI document as JSON (``?format=yaml``, or ``Accept:
application/vnd.oai.openapi``, for YAML) and always as OpenAPI 3.1, whatever
``SPECTACULAR_SETTINGS["OAS_VERSION"]`` says: OpenAPI 3.0 can only say "this reference,
or null" as ``allOf`` + ``nullable``, which strict validators refuse for ``null``. A
project that generates its own schema (``manage.py spectacular``) should set
``SPECTACULAR_SETTINGS = {"OAS_VERSION": "3.1.0", ...}`` for the same document.
"""

from typing import Any

from django.urls import include, path
from django.views.decorators.clickjacking import xframe_options_deny
from drf_spectacular.renderers import (
    OpenApiJsonRenderer,
    OpenApiJsonRenderer2,
    OpenApiYamlRenderer,
    OpenApiYamlRenderer2,
)
from drf_spectacular.views import SpectacularAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.routers import APIRootView, DefaultRouter

from .views import AuditEventViewSet, CheckpointViewSet, PipelineViewSet, RunViewSet

app_name = "stepkit_api"


class StepkitAPIRootView(APIRootView):
    """The API's index page, refusing to be framed like every other stepkit endpoint."""

    def finalize_response(self, request: Request, response: Response, *args: Any, **kwargs: Any) -> Response:
        response = super().finalize_response(request, response, *args, **kwargs)
        response.setdefault("X-Frame-Options", "DENY")
        return response


class StepkitSchemaView(SpectacularAPIView):
    """The OpenAPI 3.1 document: JSON unless YAML is asked for."""

    renderer_classes = [OpenApiJsonRenderer2, OpenApiJsonRenderer, OpenApiYamlRenderer, OpenApiYamlRenderer2]
    custom_settings = {"OAS_VERSION": "3.1.0"}


router = DefaultRouter()
router.APIRootView = StepkitAPIRootView
router.register("checkpoints", CheckpointViewSet, basename="checkpoint")
router.register("runs", RunViewSet, basename="run")
router.register("events", AuditEventViewSet, basename="event")
router.register("pipelines", PipelineViewSet, basename="pipeline")

urlpatterns = [
    path("schema/", xframe_options_deny(StepkitSchemaView.as_view()), name="schema"),
    path("", include(router.urls)),
]
