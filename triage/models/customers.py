"""Who writes in: customers, the API keys of systems that post tickets, and their idempotency records."""

from __future__ import annotations

from django.db import models
from django.db.models.functions import Upper


class Customer(models.Model):
    email = models.EmailField(max_length=320, unique=True)
    name = models.CharField(max_length=200, blank=True)
    vip = models.BooleanField(default=False)
    flagged = models.BooleanField(default=False)
    note = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        # Intake and routing find a ticket's sender with email__iexact (UPPER(email) = UPPER(%s)), which the
        # unique index on email cannot answer: without this one, every ticket scanned the whole table
        # (63 ms at 100,000 customers).
        indexes = [models.Index(Upper("email"), name="customer_email_upper")]

    def __str__(self) -> str:
        return self.email


class ApiKey(models.Model):
    name = models.CharField(max_length=100)
    # Only a SHA-256 of the key is stored; the prefix lets an admin recognise a key in lists.
    prefix = models.CharField(max_length=12, db_index=True)
    key_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"


class IdempotencyRecord(models.Model):
    api_key = models.ForeignKey(ApiKey, on_delete=models.CASCADE)
    key = models.CharField(max_length=255)
    request_hash = models.CharField(max_length=64)
    ticket = models.ForeignKey("triage.Ticket", on_delete=models.CASCADE)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["api_key", "key"], name="idempotency_key_uniq")]

    def __str__(self) -> str:
        return f"idempotency key {self.key}"
