"""The live transcript of a call: stored final and gap segments, reads, and live WebSockets."""


def transcript_link(linkedid: str) -> str:
    """Where a call's transcript reads back (what work orders and the call's context point to)."""
    return f"/api/calls/{linkedid}/transcript"
