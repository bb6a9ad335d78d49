"""Live transcription: each party of a call is its own audio stream, decoded by Vosk as it is spoken.

- :mod:`transcription.audiosocket` reads Asterisk's AudioSocket protocol (the media taps of
  ``asterisk_conf/extensions.conf`` [hotline-tap] stream here);
- :mod:`transcription.recognizer` loads the Vosk model once and decodes in a thread pool;
- :mod:`transcription.stream` turns one stream's audio into partial, final and gap segments, with
  a bounded backlog (audio is dropped, never queued without bound, when decoding falls behind);
- :mod:`transcription.publisher` sends segments out: Redis pub/sub (live) and the app (stored);
- :mod:`transcription.service` is the process (``python -m transcription``).

The taps themselves are started, watched and ended by :mod:`call_flows.taps` in the AMI listener.
"""
