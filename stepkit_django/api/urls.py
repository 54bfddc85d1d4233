"""Mount with ``path("api/stepkit/", include("stepkit_django.api.urls"))``."""

from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView
from rest_framework.routers import DefaultRouter

from .views import AuditEventViewSet, CheckpointViewSet, PipelineViewSet, RunViewSet

app_name = "stepkit_api"

router = DefaultRouter()
router.register("checkpoints", CheckpointViewSet, basename="checkpoint")
router.register("runs", RunViewSet, basename="run")
router.register("events", AuditEventViewSet, basename="event")
router.register("pipelines", PipelineViewSet, basename="pipeline")

urlpatterns = [
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("", include(router.urls)),
]
