"""Differentiable augmentations (kind ``augmentation``) of what a discriminator sees: a network's
``augment`` in a recipe (DiffAugment)."""
