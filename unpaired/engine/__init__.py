"""One training iteration: building the recipe's parts (:mod:`~unpaired.engine.build`), running
its steps (:mod:`~unpaired.engine.executor`), image pools and LR schedules."""
