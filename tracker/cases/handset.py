"""Collectors' handset reports into cases.

A problem report opens a case (source ``handset``, external id ``{device}:{report id}``, so
a retried report is the same case); a verification report answers the verification task
the case's verifier was sent: ``done`` closes the case, ``not_done`` sends it back for
rework. The pipeline hands reports over before it acknowledges their messages, so a report
the broker delivers again after a crash is looked at again, and found already filed.

A report the cases refuse (a category the taxonomy lacks, a case the collector was not sent
to verify, one not waiting for verification) is counted by reason and logged; it is not
retried: the handset hears nothing back, as for any refused payload.
"""

from __future__ import annotations

import logging

import trio

from protocols.handset.report import ProblemReport, Verdict, VerificationReport
from tracker.cases.engine import CaseEngine, CaseError, CaseNotFound, IllegalTransition, NewCase, NotAllowed
from tracker.cases.roles import SYSTEM, Actor
from tracker.metrics import Metrics
from tracker.storage.retry import retryable

log = logging.getLogger(__name__)
RETRY_S = 1.0


class HandsetReports:
    def __init__(self, engine: CaseEngine, metrics: Metrics) -> None:
        self.engine = engine
        self.metrics = metrics
        metrics.describe("gridwatch_reports_total", "Collectors' handset reports, by kind and outcome")

    async def __call__(self, reports: list[ProblemReport | VerificationReport]) -> None:
        for report in reports:
            kind = "problem" if isinstance(report, ProblemReport) else "verification"
            while True:
                try:
                    outcome = await (self.problem(report) if isinstance(report, ProblemReport)
                                     else self.verification(report))
                except (CaseError, CaseNotFound, NotAllowed, IllegalTransition) as exc:
                    outcome = _reason(exc)
                    log.warning("refused %s report %s of collector %s: %s", kind, report.report_id, report.device, exc)
                except Exception as exc:
                    # the database is away: the report's message stays unacknowledged until it
                    # is filed, ingest pushes back meanwhile, as it does for positions
                    if not retryable(exc):
                        raise
                    log.warning("handset report %s waits for the database (%s)", report.report_id, exc)
                    await trio.sleep(RETRY_S)
                    continue
                break
            self.metrics.inc("gridwatch_reports_total", kind=kind, outcome=outcome)

    def actor(self, report: ProblemReport | VerificationReport) -> Actor:
        # a device acting for itself: its role is the system's, its rights those its case gives it
        return Actor(report.device, SYSTEM, None, device=report.device, source="handset")

    async def problem(self, report: ProblemReport) -> str:
        version, taxonomy = await self.engine.taxonomy()
        if report.category not in taxonomy.categories:
            raise UnknownCategory(f"category {report.category!r} is not in taxonomy version {version}")
        new = NewCase("handset", report.category, report.description, lat=report.place.lat, lon=report.place.lon,
                      external_id=f"{report.device}:{report.report_id}", reporter=report.device,
                      district=report.district)
        _, created = await self.engine.create(new, self.actor(report))
        return "created" if created else "repeated"

    async def verification(self, report: VerificationReport) -> str:
        fields: dict[str, object] = {"note": report.note or f"report {report.report_id}"}
        if report.photos:
            fields["photos"] = list(report.photos)
        if report.verdict is Verdict.DONE:
            await self.engine.transition(report.case, "close", self.actor(report), fields)
            return "closed"
        fields["reason"] = report.note or "not done, found on site"
        await self.engine.transition(report.case, "reopen", self.actor(report), fields)
        return "reopened"


class UnknownCategory(CaseError):
    """A problem report names a category the taxonomy in force lacks."""


def _reason(exc: Exception) -> str:
    if isinstance(exc, UnknownCategory):
        return "unknown_category"
    if isinstance(exc, IllegalTransition):
        return "not_verifying"
    if isinstance(exc, NotAllowed):
        return "not_verifier"
    if isinstance(exc, CaseNotFound):
        return "unknown_case"
    return "refused"
