import gc
import os

from django.core.wsgi import get_wsgi_application
from django.urls import get_resolver

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "clinic.settings")
application = get_wsgi_application()

# Load the URLconf and the views it imports now rather than on the first request, then move every
# object start-up made into the collector's permanent generation: a full collection during a
# request then walks only what requests allocate (a lower p95 for a series plan: the planner
# benchmark's --gc-freeze, benchmarks/README.md), and forked workers keep sharing those pages.
get_resolver().url_patterns  # noqa: B018
gc.freeze()
