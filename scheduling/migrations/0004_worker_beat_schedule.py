"""The workers' periodic scans, stored in django-celery-beat's tables so an admin can see and
tune them. Each tick expires if no worker picks it up in time, so a backlog of ticks never piles
up in the broker while the workers are down."""

from django.db import migrations

#: (task name, every seconds or a daily "HH:MM" in UTC, expire seconds, description)
SCHEDULE = [
    ("scheduling.reminders_dispatch_due", 30, 60, "Send every reminder that is due."),
    ("scheduling.no_shows_mark", 120, 240, "Mark sessions not checked in in time as no-shows."),
    ("scheduling.escort_unconfirmed_scan", 600, 1200, "Alert on unconfirmed rides home."),
    ("scheduling.integration_overdue_scan", 900, 1800, "Alert on overdue integration."),
    ("scheduling.screening_expiry_scan", 3600, 3600, "Flag medicine sessions past screening."),
    ("scheduling.staff_alerts_notify_pending", 300, 600, "E-mail alerts whose e-mail was lost."),
    ("scheduling.series_revalidate_all", "03:15", 3 * 3600, "Re-check every active series."),
]
PREFIX = "clinic: "


def create_schedule(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    CrontabSchedule = apps.get_model("django_celery_beat", "CrontabSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    for task, every, expire_seconds, description in SCHEDULE:
        schedule = {}
        if isinstance(every, int):
            schedule["interval"], _ = IntervalSchedule.objects.get_or_create(
                every=every, period="seconds"
            )
        else:
            hour, minute = every.split(":")
            schedule["crontab"], _ = CrontabSchedule.objects.get_or_create(
                minute=str(int(minute)),
                hour=str(int(hour)),
                day_of_week="*",
                day_of_month="*",
                month_of_year="*",
                timezone="UTC",
            )
        PeriodicTask.objects.update_or_create(
            name=PREFIX + task,
            defaults={
                "task": task,
                "expire_seconds": expire_seconds,
                "description": description,
                "enabled": True,
                **schedule,
            },
        )


def remove_schedule(apps, schema_editor):
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTask.objects.filter(name__in=[PREFIX + task for task, *_ in SCHEDULE]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("scheduling", "0003_reminders_outbox_policy_staff_alerts"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create_schedule, remove_schedule)]
