"""The calls resource: event recording, call summaries, outcomes, listing."""
