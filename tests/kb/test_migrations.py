from __future__ import annotations

import pytest
from django.core.management import call_command


@pytest.mark.django_db
def test_the_kb_models_and_their_migrations_agree() -> None:
    # --check exits non-zero when a model change has no migration.
    call_command("makemigrations", "kb", "--check", "--dry-run", verbosity=0)
