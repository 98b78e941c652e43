"""Built-in plugins of ``unpaired``: a catalogue of components.

Installed as the package ``unpaired_plugins``. Each module is a pluggy plugin registered through
the ``unpaired`` entry-point group, the same way a third-party package registers its own.
"""
