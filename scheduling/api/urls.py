from __future__ import annotations

from django.urls import path

from . import availability, booking, portal, views

urlpatterns = [
    path("sessions/", views.SessionList.as_view(), name="session-list"),
    path("sessions/<int:pk>/", views.SessionDetail.as_view(), name="session-detail"),
    path("sessions/<int:pk>/cancel/", views.SessionCancel.as_view(), name="session-cancel"),
    path("sessions/<int:pk>/escort/", views.SessionEscort.as_view(), name="session-escort"),
    path("sessions/<int:pk>/check-in/", views.SessionCheckIn.as_view(), name="session-check-in"),
    path("sessions/<int:pk>/complete/", views.SessionComplete.as_view(), name="session-complete"),
    path("sessions/<int:pk>/no-show/", views.SessionNoShow.as_view(), name="session-no-show"),
    path(
        "sessions/<int:pk>/reschedule/",
        booking.SessionReschedule.as_view(),
        name="session-reschedule",
    ),
    path("series/", views.SeriesList.as_view(), name="series-list"),
    path("series/plan/", booking.SeriesPlan.as_view(), name="series-plan"),
    path("series/<int:pk>/", views.SeriesDetail.as_view(), name="series-detail"),
    path("series/<int:pk>/hold/", views.SeriesHold.as_view(), name="series-hold"),
    path("series/<int:pk>/resume/", views.SeriesResume.as_view(), name="series-resume"),
    path(
        "series/<int:pk>/discontinue/", views.SeriesDiscontinue.as_view(), name="series-discontinue"
    ),
    path("series/<int:pk>/complete/", views.SeriesComplete.as_view(), name="series-complete"),
    path("availability/", availability.AvailabilityView.as_view(), name="availability"),
    path("day-sheet/", views.DaySheetView.as_view(), name="day-sheet"),
    path("me/", portal.MeView.as_view(), name="me"),
    path("me/series/", portal.MeSeries.as_view(), name="me-series"),
    path("me/sessions/", portal.MeSessions.as_view(), name="me-sessions"),
    path(
        "me/sessions/<int:pk>/confirm/",
        portal.MeSessionConfirm.as_view(),
        name="me-session-confirm",
    ),
    path(
        "me/sessions/<int:pk>/cancel/", portal.MeSessionCancel.as_view(), name="me-session-cancel"
    ),
    path("me/calendar.ics", portal.MeCalendar.as_view(), name="me-calendar"),
    path("me/calendar-feed/", portal.MeCalendarFeed.as_view(), name="me-calendar-feed"),
    path("calendar/<str:token>.ics", portal.CalendarFeedView.as_view(), name="calendar-feed"),
]
