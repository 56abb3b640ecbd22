"""``/api/v1/``: every endpoint of API.md that exists so far, the schema and its docs."""

from __future__ import annotations

from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from . import views
from .auth import TokenObtainView, TokenRefreshView

urlpatterns = [
    path("auth/token/", TokenObtainView.as_view(), name="token-obtain"),
    path("auth/token/refresh/", TokenRefreshView.as_view(), name="token-refresh"),
    path("clinics/", views.ClinicList.as_view(), name="clinic-list"),
    path("clinics/<int:pk>/", views.ClinicDetail.as_view(), name="clinic-detail"),
    path("rooms/", views.RoomList.as_view(), name="room-list"),
    path("rooms/<int:pk>/", views.RoomDetail.as_view(), name="room-detail"),
    path("staff/", views.StaffList.as_view(), name="staff-list"),
    path("staff/<int:pk>/", views.StaffDetail.as_view(), name="staff-detail"),
    path(
        "staff/<int:pk>/working-hours/",
        views.StaffWorkingHoursCreate.as_view(),
        name="staff-working-hours",
    ),
    path("staff/<int:pk>/time-off/", views.StaffTimeOffCreate.as_view(), name="staff-time-off"),
    path("patients/", views.PatientList.as_view(), name="patient-list"),
    path("patients/<int:pk>/", views.PatientDetail.as_view(), name="patient-detail"),
    path(
        "patients/<int:pk>/screenings/",
        views.PatientScreenings.as_view(),
        name="patient-screenings",
    ),
    path("patients/<int:pk>/consents/", views.PatientConsents.as_view(), name="patient-consents"),
    path("", include("protocols.api.urls")),
    path("", include("scheduling.api.urls")),
    path("", include("integration.api.urls")),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
]
