"""What every review page shares, the admin's and the inbox's; imports nothing of ``django.contrib.admin``.

* :mod:`~stepkit_django.reviewing.forms`: the edits form (typed fields) and the reassignment form;
* :mod:`~stepkit_django.reviewing.display`: the data as rows, edits as word-level differences;
* :mod:`~stepkit_django.reviewing.trail`: audit events as rows of sentences;
* :mod:`~stepkit_django.reviewing.navigation`: the next item, "Review next", the approval's message;
* :mod:`~stepkit_django.reviewing.page`: the review page's form and context;
* :mod:`~stepkit_django.reviewing.actions`: a posted page → the review service and the message;
* :mod:`~stepkit_django.reviewing.queue`: the queue's filters as conditions.
"""
