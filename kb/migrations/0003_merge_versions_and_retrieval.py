from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("kb", "0002_article_versions"),
        ("kb", "0002_retrieval"),
    ]

    operations = []
