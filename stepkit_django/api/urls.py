"""Mount with ``path("api/stepkit/", include("stepkit_django.api.urls"))``."""

from typing import Any

from django.urls import include, path
from django.views.decorators.clickjacking import xframe_options_deny
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


router = DefaultRouter()
router.APIRootView = StepkitAPIRootView
router.register("checkpoints", CheckpointViewSet, basename="checkpoint")
router.register("runs", RunViewSet, basename="run")
router.register("events", AuditEventViewSet, basename="event")
router.register("pipelines", PipelineViewSet, basename="pipeline")

urlpatterns = [
    path("schema/", xframe_options_deny(SpectacularAPIView.as_view()), name="schema"),
    path("", include(router.urls)),
]
