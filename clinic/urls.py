from django.contrib import admin
from django.urls import include, path

from scheduling.views import session_action_link

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", include("clinic.api.urls")),
    path("r/<str:token>/", session_action_link, name="session-action-link"),
]

handler404 = "clinic.api.errors.handler404"
handler500 = "clinic.api.errors.handler500"
