"""Numbers flagged for harassment (notice part 四(五), order maintenance), kept in Redis for intake."""
