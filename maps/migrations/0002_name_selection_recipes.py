"""Maps built before selection recipes had names record the one they were built with: first-counting.

Until issue 15 a map's parameters held only a description of its rule under "selection"; the
rule was "first-counting" (docs/maps-and-reliability.md). Writing the name keeps those maps, on
every rebuild, exactly as they were published; `rebuild_maps --selection-recipe lab` moves an
experiment to the lab's recipe. Reversing removes the name again.
"""

from django.db import migrations


def name_recipes(apps, schema_editor):
    ClickMap = apps.get_model("maps", "ClickMap")
    for click_map in ClickMap.objects.all().iterator():
        if "selection_recipe" not in click_map.parameters:
            click_map.parameters = {**click_map.parameters, "selection_recipe": "first-counting"}
            click_map.save(update_fields=["parameters"])


def unname_recipes(apps, schema_editor):
    ClickMap = apps.get_model("maps", "ClickMap")
    for click_map in ClickMap.objects.all().iterator():
        if click_map.parameters.pop("selection_recipe", None) is not None:
            click_map.save(update_fields=["parameters"])


class Migration(migrations.Migration):
    dependencies = [("maps", "0001_initial")]

    operations = [migrations.RunPython(name_recipes, unname_recipes)]
