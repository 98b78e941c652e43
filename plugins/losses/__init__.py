"""Losses: adversarial and consistency."""
