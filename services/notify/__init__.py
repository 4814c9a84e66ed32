"""Notify: delivers dispatched cases to departments' webhooks (Standard Webhooks)."""
