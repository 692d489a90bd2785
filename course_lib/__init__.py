"""Helper library for the course chapter "The Foundation-Model Paradigm".

Import the submodules you need (``course_lib.data``, ``course_lib.models``,
``course_lib.zero_shot``, ...); this package import stays light so that the
``course`` command line starts quickly without loading torch.
"""

__version__ = "0.1.0"
