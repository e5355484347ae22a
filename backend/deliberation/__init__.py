"""Deliberation: voting rules, consensus detection and decision synthesis, as data."""
