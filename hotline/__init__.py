"""Hotline core: contracts, names shared with the dialplan, settings, site, secrets, Redis keys,
pub/sub and the event sink. It imports nothing of ours above it (import-linter checks)."""
