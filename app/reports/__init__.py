"""Figures from what was recorded: the KPIs, and reports of a period (CSV, Excel)."""
