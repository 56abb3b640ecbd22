from __future__ import annotations

from django.urls import path

from . import views

urlpatterns = [
    path("protocols/", views.ProtocolList.as_view(), name="protocol-list"),
    path("protocols/<int:pk>/", views.ProtocolDetail.as_view(), name="protocol-detail"),
]
