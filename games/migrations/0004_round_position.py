"""Rounds get their place in the session, unique within the session."""

from django.db import migrations, models


def number_rounds(apps, schema_editor):
    """Existing rounds take their place in the order they were started."""
    Round = apps.get_model("games", "Round")
    positions: dict[int, int] = {}
    for round_ in Round.objects.order_by("session_id", "pk").only("pk", "session_id"):
        position = positions.get(round_.session_id, 0)
        Round.objects.filter(pk=round_.pk).update(position=position)
        positions[round_.session_id] = position + 1


class Migration(migrations.Migration):
    dependencies = [("games", "0003_study_consent_pilot")]

    operations = [
        migrations.AddField(
            model_name="round",
            name="position",
            field=models.PositiveSmallIntegerField(default=0, help_text="0-based index of the round in its session."),
            preserve_default=False,
        ),
        migrations.RunPython(number_rounds, migrations.RunPython.noop),
        migrations.AddConstraint(
            model_name="round",
            constraint=models.UniqueConstraint(fields=("session", "position"), name="round_one_per_position"),
        ),
    ]
