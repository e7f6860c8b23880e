from django.db import migrations, models


def unlink_second_resumes(apps, schema_editor):
    """Before the constraint: runs that double clicks resumed twice keep only their first resume's link."""
    TrainingRun = apps.get_model("training", "TrainingRun")
    seen: set[int] = set()
    for pk, parent in TrainingRun.objects.filter(resumed_from__isnull=False).order_by("pk").values_list("pk", "resumed_from"):
        if parent in seen:
            TrainingRun.objects.filter(pk=pk).update(resumed_from=None)
        seen.add(parent)


class Migration(migrations.Migration):
    dependencies = [
        ("training", "0002_run_summary"),
    ]

    operations = [
        migrations.RunPython(unlink_second_resumes, migrations.RunPython.noop),
        migrations.AddConstraint(
            model_name="trainingrun",
            constraint=models.UniqueConstraint(fields=("resumed_from",), name="run_resumed_once"),
        ),
    ]
