"""Training-event handlers a recipe builds from its ``handlers:`` section (kind ``handler``)."""
