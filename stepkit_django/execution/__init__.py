"""How a run is executed: everything between "this run is queued" and "it paused or ended".

* :mod:`~stepkit_django.execution.executors`: the backends that get a queued run
  advanced (``inline``, ``tasks``, ``celery``), chosen by ``STEPKIT["EXECUTOR"]``;
* :mod:`~stepkit_django.execution.jobs`: the functions a worker and the periodic
  jobs call (advance a run, expire due reviews, recover lost runs), which the
  tasks framework and Celery wrap;
* :mod:`~stepkit_django.execution.leases`: which process holds a run, the
  heartbeat that renews its lease, and the recovery of runs whose lease lapsed;
* :mod:`~stepkit_django.execution.runner`: drives the engine over a run held here,
  saving progress after each step and pausing at reviews;
* :mod:`~stepkit_django.execution.progress`: the hot path's writes (the run's
  start, each step, its end), through the compiled statements of the private
  ``_sql`` module, which nothing outside this package imports.

Human-paced writes (decisions, claims, reassignments, expiry, cancellation) are not
here: they go through the ORM in :mod:`stepkit_django.transitions`.
"""
