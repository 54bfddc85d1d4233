"""The reviewer inbox: the review queue for people who are not staff, outside the Django admin.

Mount it with ``path("review/", include("stepkit_django.inbox.urls"))``. Its pages extend
``STEPKIT["INBOX_BASE_TEMPLATE"]``; every decision goes through :mod:`stepkit_django.review`
and :mod:`stepkit_django.permissions`, as in the admin and the API.

* :mod:`stepkit_django.inbox.views`: the queue, "Review next", the review page, my decisions;
* :mod:`stepkit_django.inbox.link_views`: the pages of signed action links (a confirmation on GET,
  the decision on POST).
"""
