"""Operations: the CLI, the stack that starts every process, the Asterisk runtime and its rendering.

The top layer: it imports the services and the core, and nothing imports it back.
"""
