"""AMI side: the client, the event-to-call-event mapping, live call state, and (later) the flows."""
