"""The 12345 ⇄ 110 exchange (工单 ⇄ 警单): outbox and sender, signed receiver, the exchange log."""
