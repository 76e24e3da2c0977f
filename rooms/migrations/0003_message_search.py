"""A GIN index for full-text search of message bodies (rooms/search.py), on PostgreSQL only:
SQLite has no such index, and its simpler match needs none."""

from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVector
from django.db import migrations


def _index():
    # The very expression rooms/search.py filters on (BODY_VECTOR), or the index serves nothing.
    return GinIndex(SearchVector("body", config="english"), name="message_body_search")


def create_index(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.add_index(apps.get_model("rooms", "Message"), _index())


def drop_index(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.remove_index(apps.get_model("rooms", "Message"), _index())


class Migration(migrations.Migration):
    dependencies = [("rooms", "0002_moderation")]

    operations = [migrations.RunPython(create_index, drop_index)]
