"""The report query: parse the period, read the roll-ups (workflow.reports.read), map to the schema type."""

from __future__ import annotations

from datetime import date, timedelta

from resolvers import roles
from resolvers.runner import query
from schema.reports import Report, ReportGranularity, ReportSplit
from schema.tickets import Info
from workflow.reports import read as reports_service


async def report(
    info: Info,
    start: date | None = None,
    end: date | None = None,
    granularity: ReportGranularity = ReportGranularity.DAY,
    split: ReportSplit = ReportSplit.NONE,
) -> Report:
    """The days `start`..`end` (inclusive, UTC; default: the last 30 days up to today), at most 366 days."""
    today = info.context.runtime.services.clock().date()
    last = end or today
    first = start or last - timedelta(days=29)
    built = await query(
        info.context,
        roles.READERS,
        lambda s, p: reports_service.build_report(
            s,
            p.merchant_id,
            start=first,
            end=last,
            granularity=reports_service.Granularity(granularity.value),
            split=reports_service.Split(split.value),
        ),
    )
    return Report.from_domain(built)
