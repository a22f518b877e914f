from __future__ import annotations

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "triage.settings")
application = get_wsgi_application()

from triage.celery import app as celery_app  # noqa: E402 (Django is set up first)

# A web request that queues a ticket's triage tries the broker once: kombu would otherwise wait 2 s and try
# again, so intake with Redis down would take seconds instead of milliseconds. The ticket is stored either way
# and the sweeper queues what could not be published. Only the web process: the worker and its scheduler keep
# kombu's reconnecting, without which a scheduler started during a broker outage stops for good.
celery_app.conf.broker_transport_options = {**celery_app.conf.broker_transport_options, "max_retries": 0}
