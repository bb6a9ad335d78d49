"""Hotline: the 12345 / 110 linkage contact-center backend (shared core: settings, contracts, CLI)."""
