"""Whole-series planning and moving a session (API.md, booking): ``POST /series/plan/`` and
``POST /sessions/{id}/reschedule/``. Booking the series itself is ``SeriesList.post``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from clinic.api.access import require_roles
from clinic.api.base import StaffView, audit
from scheduling import services
from scheduling.models import Session, TreatmentSeries
from scheduling.selectors import sessions_with_details

from . import booking_serializers as bs
from .views import FRONT, IF_MATCH, SessionAction, etag


class SeriesPlan(StaffView):
    """The schedule ``POST /series/`` would book now, and nothing written but the audit row."""

    serializer_class = bs.SeriesPlanSerializer

    @extend_schema(request=bs.SeriesPlanInputSerializer, responses=bs.SeriesPlanSerializer)
    def post(self, request: Request) -> Response:
        require_roles(self.caller, *FRONT)
        arguments = bs.series_request(self.caller, request.data).service_arguments()
        patient = arguments["patient"]
        plan = services.series_plan(**arguments)
        audit(request, "plan", "patient", [patient], lambda item: item.pk)
        answer = {
            "sessions": plan.sessions,
            "violations": [violation.as_dict() for violation in plan.violations],
        }
        return Response(bs.SeriesPlanSerializer(answer, context={"zone": patient.clinic.tz}).data)


@dataclass(frozen=True)
class _Rescheduled:
    moved: list[Session]
    series: TreatmentSeries | None
    violations: list[dict[str, Any]]


class SessionReschedule(SessionAction):
    """Move a session; with ``cascade`` the later sessions of its series move as little as the
    rules need. The answer shows the series as the service re-validated it."""

    action_name = "reschedule"
    roles = FRONT
    input_serializer = bs.RescheduleInputSerializer

    @extend_schema(
        request=bs.RescheduleInputSerializer,
        responses=bs.RescheduleSerializer,
        parameters=[IF_MATCH],
    )
    def post(self, request: Request, pk: int) -> Response:
        return self.act(request, pk)

    def perform(self, session: Session, data: dict[str, Any]) -> _Rescheduled:
        moved = services.session_reschedule(
            session, starts_at=data["starts_at"], cascade=data["cascade"], by=self.user
        )
        series = TreatmentSeries.objects.get(pk=session.series_id) if session.series_id else None
        return _Rescheduled(moved, series, list(series.violations) if series else [])

    def audited(self, session: Session, outcome: _Rescheduled) -> list[Session]:
        return outcome.moved

    def answer(self, pk: int, outcome: _Rescheduled) -> Response:
        order = [moved.pk for moved in outcome.moved]
        by_id = sessions_with_details(Session.objects.filter(pk__in=order)).in_bulk()
        session = by_id[pk]
        series = outcome.series
        body = {
            "session": session,
            "series": (
                {"id": series.pk, "status": series.status, "violations": outcome.violations}
                if series is not None
                else None
            ),
            "moved": [by_id[moved_id] for moved_id in order],
        }
        return Response(bs.RescheduleSerializer(body).data, headers={"ETag": etag(session)})
