"""subprocess_exec / subprocess_shell (spawning in handles/process.pyx)."""


class SubprocessMixin:
    """Child processes of ourloop.Loop."""
