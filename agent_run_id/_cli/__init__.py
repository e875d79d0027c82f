"""The ``agent-run-id`` command; its modules are private, its entry point is ``main.main``."""
