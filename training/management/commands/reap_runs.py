from django.core.management.base import BaseCommand

from training.services import runs_reap_stale


class Command(BaseCommand):
    help = (
        "Mark running runs whose worker stopped beating its heart (TRAINING_HEARTBEAT_TIMEOUT_S) as failed. "
        "The dashboard does this on every page view; run this from cron when nobody is looking."
    )

    def handle(self, *args, **options):
        reaped = runs_reap_stale()
        if reaped:
            self.stdout.write(f"Marked {len(reaped)} run(s) failed: {', '.join(f'#{pk}' for pk in reaped)}")
        else:
            self.stdout.write("No stale runs.")
