"""Commands built on the rest: ``recipe check`` (:mod:`~unpaired.tools.check`), ``ablate`` and ``report``."""
