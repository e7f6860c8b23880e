from django.db import migrations

ROLE = "reviewer"


def create_role(apps, schema_editor):
    apps.get_model("auth", "Group").objects.get_or_create(name=ROLE)


def drop_role(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name=ROLE).delete()


class Migration(migrations.Migration):
    # After 0006_team_data (merged into this branch); the coordinator re-chains migrations at merge time.
    dependencies = [("annotation", "0006_team_data")]
    operations = [migrations.RunPython(create_role, drop_role)]
