"""SLA targets by urgency, in wall-clock or business hours, and what an admin's change does to open tickets."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client

from tests.support import builders
from triage import sla
from triage.errors import ApplicationError
from triage.models import AuditEvent, SlaPolicy

BERLIN = ZoneInfo("Europe/Berlin")
WEEKDAYS = {1, 2, 3, 4, 5}


def _add(start: dt.datetime, minutes: int) -> dt.datetime:
    return sla.add_business_minutes(start, minutes, day_start=dt.time(9), day_end=dt.time(17), weekdays=WEEKDAYS,
                                    tz=BERLIN).astimezone(BERLIN)


def test_business_minutes_inside_one_working_day() -> None:
    tuesday_10 = dt.datetime(2026, 11, 17, 10, 0, tzinfo=BERLIN)
    assert _add(tuesday_10, 60) == dt.datetime(2026, 11, 17, 11, 0, tzinfo=BERLIN)


def test_a_friday_evening_ticket_is_due_on_monday() -> None:
    friday_18 = dt.datetime(2026, 11, 20, 18, 0, tzinfo=BERLIN)
    # 8 business hours: all of Monday.
    assert _add(friday_18, 8 * 60) == dt.datetime(2026, 11, 23, 17, 0, tzinfo=BERLIN)
    friday_16 = dt.datetime(2026, 11, 20, 16, 0, tzinfo=BERLIN)
    # One hour left on Friday, the other 7 on Monday.
    assert _add(friday_16, 8 * 60) == dt.datetime(2026, 11, 23, 16, 0, tzinfo=BERLIN)


def test_before_opening_the_clock_starts_at_opening() -> None:
    monday_7 = dt.datetime(2026, 11, 23, 7, 30, tzinfo=BERLIN)
    assert _add(monday_7, 15) == dt.datetime(2026, 11, 23, 9, 15, tzinfo=BERLIN)


def test_business_days_across_a_daylight_saving_change_keep_local_hours() -> None:
    friday = dt.datetime(2026, 10, 23, 16, 30, tzinfo=BERLIN)  # clocks go back on Sunday 25 October
    assert _add(friday, 60) == dt.datetime(2026, 10, 26, 9, 30, tzinfo=BERLIN)


def test_states_from_ok_to_breached_and_met_or_missed() -> None:
    created = dt.datetime(2026, 11, 22, 9, 0, tzinfo=dt.UTC)
    due = created + dt.timedelta(hours=1)
    def at(minutes: int) -> dt.datetime:
        return created + dt.timedelta(minutes=minutes)

    assert sla.state(due=due, created=created, answered=None, warn_percent=25, now=at(30)) == "ok"
    assert sla.state(due=due, created=created, answered=None, warn_percent=25, now=at(46)) == "warn"
    assert sla.state(due=due, created=created, answered=None, warn_percent=25, now=at(61)) == "breached"
    assert sla.state(due=due, created=created, answered=at(59), warn_percent=25, now=at(90)) == "met"
    assert sla.state(due=due, created=created, answered=at(61), warn_percent=25, now=at(90)) == "missed"


def _values(**changes: object) -> dict[str, object]:
    values: dict[str, object] = {"urgent_minutes": 15, "high_minutes": 60, "normal_minutes": 480,
                                 "low_minutes": 1440, "business_hours": False, "warn_percent": 25,
                                 "timezone": "UTC", "weekdays": [1, 2, 3, 4, 5]}
    values.update(changes)
    return values


@pytest.mark.django_db
def test_changing_a_target_moves_open_tickets_but_not_answered_ones() -> None:
    admin = User.objects.create_user("ada")
    open_ticket = builders.ticket(subject="s", body="b", from_email="c@example.com", urgency="high")
    answered = builders.ticket(subject="s", body="b", from_email="c@example.com", urgency="high",
                                     status="approved")
    sla.policy_update(user=admin, values=_values(high_minutes=30))
    open_ticket.refresh_from_db()
    answered_due = answered.sla_due_at
    answered.refresh_from_db()
    assert open_ticket.sla_due_at - open_ticket.created_at == dt.timedelta(minutes=30)
    assert answered.sla_due_at == answered_due
    assert AuditEvent.objects.filter(action="sla.update").count() == 1
    # New tickets use the new target at once in this process.
    fresh = builders.ticket(subject="s", body="b", from_email="c@example.com", urgency="high")
    assert fresh.sla_due_at - fresh.created_at == dt.timedelta(minutes=30)


@pytest.mark.django_db
@pytest.mark.parametrize(("changes", "message"), [
    ({"urgent_minutes": 0}, "urgent target must be"),
    ({"low_minutes": "soon"}, "low target must be"),
    ({"timezone": "Mars/Olympus"}, "is not a time zone"),
    ({"weekdays": [0, 8]}, "ISO weekdays"),
    ({"business_hours": True, "weekdays": []}, "at least one working day"),
    ({"business_hours": True, "day_start": dt.time(17), "day_end": dt.time(9)}, "end after the start"),
])
def test_an_invalid_policy_is_refused_and_nothing_changes(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ApplicationError, match=message):
        sla.policy_update(user=User.objects.create_user("ada"), values=_values(**changes))
    assert not SlaPolicy.objects.exists()


@pytest.mark.django_db
def test_only_admins_see_and_change_the_sla_page(client: Client) -> None:
    agent = User.objects.create_user("alice")
    agent.groups.add(Group.objects.get_or_create(name="agents")[0])
    admin = User.objects.create_user("ada")
    admin.groups.add(Group.objects.get_or_create(name="admins")[0])
    client.force_login(agent)
    assert client.get("/settings/sla").status_code == 404
    assert client.post("/settings/sla", {"urgent_minutes": "5"}).status_code == 404
    client.force_login(admin)
    assert client.get("/settings/sla").status_code == 200
    form = {"urgent_minutes": "10", "high_minutes": "45", "normal_minutes": "240", "low_minutes": "1440",
            "warn_percent": "20", "timezone": "Europe/Berlin", "day_start": "08:00", "day_end": "18:00",
            "weekdays": ["1", "2", "3", "4", "5"], "business_hours": "on"}
    response = client.post("/settings/sla", form)
    assert response.status_code == 302
    policy = SlaPolicy.objects.get()
    assert (policy.urgent_minutes, policy.business_hours, policy.timezone) == (10, True, "Europe/Berlin")
    assert policy.day_start == dt.time(8) and policy.weekdays == [1, 2, 3, 4, 5]
    response = client.post("/settings/sla", {**form, "urgent_minutes": "-3"})
    assert response.status_code == 400 and "urgent target must be" in response.content.decode()
