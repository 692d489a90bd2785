"""Subcommands of the ``course`` CLI, one module each (see ``course_lib.cli``)."""
