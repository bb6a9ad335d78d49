"""Work orders (工单 at 12345, 警单 at 110): drafted from the caller's words, confirmed by operators."""
