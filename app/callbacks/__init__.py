"""Outbound calls: callback tasks (回访, missed calls), their scheduler and API."""
