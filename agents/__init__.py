"""Test and demo agents: SIPp scenarios, synthesized speech, RTP/DTMF pcaps, a fake Asterisk.

They stand in for phones, callers and Asterisk in tests, benchmarks and the demo commands; the
product (core and services) never imports them.
"""
