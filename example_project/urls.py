from django.contrib import admin
from django.contrib.auth.views import LoginView
from django.urls import include, path
from django.views.decorators.clickjacking import xframe_options_deny
from django.views.generic import TemplateView

urlpatterns = [
    # The demo's home: links to the inbox (every reviewer) and the admin (staff).
    path("", TemplateView.as_view(template_name="demo/home.html")),
    path("admin/", admin.site.urls),
    path(
        "accounts/login/",
        xframe_options_deny(LoginView.as_view(template_name="stepkit_django/inbox/login.html")),
        name="login",
    ),
    path("api/stepkit/", include("stepkit_django.api.urls")),
    path("review/", include("stepkit_django.inbox.urls")),
]
