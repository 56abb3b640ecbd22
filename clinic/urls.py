from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", include("clinic.api.urls")),
]

handler404 = "clinic.api.errors.handler404"
handler500 = "clinic.api.errors.handler500"
