from __future__ import annotations

from django.urls import path

from . import views

urlpatterns = [
    path("caseload/", views.CaseloadView.as_view(), name="caseload"),
    path(
        "sessions/<int:pk>/clinical-record/",
        views.ClinicalRecordView.as_view(),
        name="session-clinical-record",
    ),
    path("sessions/<int:pk>/dose/", views.DoseCreate.as_view(), name="session-dose"),
    path("sessions/<int:pk>/dose/end/", views.DoseEnd.as_view(), name="session-dose-end"),
    path("sessions/<int:pk>/vitals/", views.VitalSignsCreate.as_view(), name="session-vitals"),
    path(
        "sessions/<int:pk>/adverse-events/",
        views.AdverseEventCreate.as_view(),
        name="session-adverse-events",
    ),
    path("sessions/<int:pk>/discharge/", views.DischargeCreate.as_view(), name="session-discharge"),
    path(
        "sessions/<int:pk>/outside-integration/",
        views.OutsideIntegrationCreate.as_view(),
        name="session-outside-integration",
    ),
    path(
        "sessions/<int:pk>/decline-integration/",
        views.DeclineIntegration.as_view(),
        name="session-decline-integration",
    ),
    path("sessions/<int:pk>/notes/", views.SessionNotes.as_view(), name="session-notes"),
    path(
        "outside-integrations/<int:pk>/confirm/",
        views.OutsideIntegrationConfirm.as_view(),
        name="outside-integration-confirm",
    ),
    path(
        "questionnaires/<int:pk>/answers/",
        views.QuestionnaireAnswerStaff.as_view(),
        name="questionnaire-answers",
    ),
    path(
        "series/<int:pk>/decline-integration/",
        views.SeriesDeclineIntegration.as_view(),
        name="series-decline-integration",
    ),
    path("series/<int:pk>/scores/", views.SeriesScores.as_view(), name="series-scores"),
    path(
        "series/<int:pk>/questionnaires/",
        views.SeriesQuestionnaires.as_view(),
        name="series-questionnaires",
    ),
    path("me/questionnaires/", views.MeQuestionnaires.as_view(), name="me-questionnaires"),
    path(
        "me/questionnaires/<int:pk>/answers/",
        views.MeQuestionnaireAnswer.as_view(),
        name="me-questionnaire-answers",
    ),
    path("me/scores/", views.MeScores.as_view(), name="me-scores"),
    path(
        "me/outside-integrations/",
        views.MeOutsideIntegrations.as_view(),
        name="me-outside-integrations",
    ),
    path(
        "me/outside-integrations/<int:pk>/confirm/",
        views.MeOutsideIntegrationConfirm.as_view(),
        name="me-outside-integration-confirm",
    ),
]
