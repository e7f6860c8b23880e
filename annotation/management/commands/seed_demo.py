"""Demo accounts, the demo dataset and a demo campaign; safe to run again and again."""

import io

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand
from django.db import transaction

from annotation.models import Campaign, CampaignTask, Dataset, Example
from annotation.qa.format import FEEDBACK, INPUTS
from annotation.roles import ANNOTATOR, RESEARCHER
from annotation.services.campaigns import campaign_create
from annotation.services.datasets import dataset_import
from annotation.services.prompts import prompts_import

DEMO_PASSWORD = "granary-demo"
DEMO_DATASET = "demo"
DEMO_SPLIT = "dev"
DEMO_FILES = {
    FEEDBACK: settings.BASE_DIR / "demo" / "qa_feedback_demo.json",
    INPUTS: settings.BASE_DIR / "demo" / "qa_feedback_demo_inputs.json",
}
# (username, role); "admin" is a superuser, which also makes it a researcher.
ACCOUNTS = (("admin", None), ("researcher", RESEARCHER), ("annotator", ANNOTATOR), ("annotator2", ANNOTATOR))
CAMPAIGN_NAME = "Demo campaign"
# The detox task's demo: the shipped prompt file, its last DETOX_DEV_PROMPTS lines as the dev split.
DETOX_DATASET = "demo-detox"
DETOX_FILE = settings.BASE_DIR / "demo" / "detox_prompts.jsonl"
DETOX_DEV_PROMPTS = 12


class Command(BaseCommand):
    help = (
        "Create the demo accounts (admin, researcher, annotator, annotator2), import the demo dataset "
        f"({DEMO_DATASET}/{DEMO_SPLIT}, both formats) and a demo campaign. Existing accounts, data and "
        "campaigns are left as they are."
    )

    def add_arguments(self, parser):
        parser.add_argument("--password", default=DEMO_PASSWORD, help="password for accounts created now")

    @transaction.atomic
    def handle(self, *args, password: str, **options):
        User = get_user_model()
        for role in (ANNOTATOR, RESEARCHER):
            Group.objects.get_or_create(name=role)

        lines = []
        users = {}
        for username, role in ACCOUNTS:
            user, created = User.objects.get_or_create(username=username)
            if created:
                user.set_password(password)
                if role is None:
                    user.is_staff = user.is_superuser = True
                user.save()
            if role is not None:
                user.groups.add(Group.objects.get(name=role))
            users[username] = user
            shown = password if created else "(existing account, password unchanged)"
            lines.append(f"  {username:<12} {shown:<40} {role or 'superuser'}")

        for fmt, path in DEMO_FILES.items():
            flag = "has_feedback_format" if fmt == FEEDBACK else "has_input_format"
            if Example.objects.filter(dataset__name=DEMO_DATASET, split=DEMO_SPLIT, **{flag: True}).exists():
                self.stdout.write(f"Demo data ({fmt} format) already imported.")
                continue
            summary = dataset_import(
                path_or_file=path, dataset_name=DEMO_DATASET, split=DEMO_SPLIT, user=users["researcher"]
            )
            self.stdout.write(str(summary))
        dataset = Dataset.objects.get(name=DEMO_DATASET)
        if not dataset.description:
            dataset.description = "A dozen hand-written questions for trying Granary out."
            dataset.save(update_fields=["description"])

        if Campaign.objects.filter(dataset=dataset).exists():
            self.stdout.write("Demo campaign already exists.")
        else:
            campaign_create(
                name=CAMPAIGN_NAME,
                dataset=dataset,
                split=DEMO_SPLIT,
                task=CampaignTask.BOTH,
                annotators=[users["annotator"], users["annotator2"]],
                created_by=users["researcher"],
            )
            self.stdout.write(f"Created campaign {CAMPAIGN_NAME!r} for annotator and annotator2.")

        self._seed_detox(users["researcher"])
        self.stdout.write("Demo accounts:")
        self.stdout.write(f"  {'username':<12} {'password':<40} role")
        for line in lines:
            self.stdout.write(line)

    def _seed_detox(self, user) -> None:
        if Dataset.objects.filter(name=DETOX_DATASET).exists():
            self.stdout.write("Detox demo prompts already imported.")
            return
        lines = DETOX_FILE.read_text(encoding="utf-8").splitlines(keepends=True)
        for split, chunk in (("train", lines[:-DETOX_DEV_PROMPTS]), ("dev", lines[-DETOX_DEV_PROMPTS:])):
            summary = prompts_import(path_or_file=io.StringIO("".join(chunk)), dataset_name=DETOX_DATASET, split=split,
                                     user=user)
            self.stdout.write(str(summary))
