import json

from django.core.management.base import BaseCommand, CommandError

from annotation.models import Dataset, Example
from annotation.selectors.agreement import dataset_agreement


def _shown(value: float | None) -> str:
    return "undefined (no variation)" if value is None else f"{value:.3f}"


class Command(BaseCommand):
    # A data command: the system checks (URLs, templates, admin) would import every view for nothing.
    requires_system_checks = []
    help = (
        "Agreement among the annotators of one split, over the examples two or more of them annotated: "
        "Krippendorff's alpha (nominal) of the preferences (unit: example x pair) and of the error spans "
        "(unit: example x word of prediction 1; overall and per error type), and the exact-span F1 between "
        "annotators. Undefined figures (no variation) are null in --json."
    )

    def add_arguments(self, parser):
        parser.add_argument("--dataset", required=True)
        parser.add_argument("--split", required=True)
        parser.add_argument("--json", action="store_true", dest="as_json", help="print the figures as JSON")

    def handle(self, *args, dataset: str, split: str, as_json: bool, **options):
        found = Dataset.objects.filter(name=dataset).first()
        if found is None:
            known = ", ".join(Dataset.objects.values_list("name", flat=True)) or "none yet"
            raise CommandError(f"no dataset named {dataset!r} (datasets: {known})")
        if not Example.objects.filter(dataset=found, split=split).exists():
            raise CommandError(f"{dataset} has no split {split!r}")
        figures = dataset_agreement(dataset=found, split=split)
        if as_json:
            self.stdout.write(json.dumps(figures, indent=2))
            return
        names = ", ".join(figures["annotators"]) or "none"
        self.stdout.write(f"{dataset}/{split}: {figures['items']} examples with two or more annotators ({names})")
        self.stdout.write(f"  preference alpha:   {_shown(figures['preference']['alpha'])}")
        self.stdout.write(f"  errors alpha:       {_shown(figures['errors']['alpha'])}")
        for error_type, value in figures["errors"]["per_type"].items():
            self.stdout.write(f"    {error_type + ':':<18}{_shown(value)}")
        self.stdout.write(f"  exact-span F1:      {_shown(figures['errors']['span_f1_exact'])}")
