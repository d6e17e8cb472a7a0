"""Tests of the signal sources (custom_components.cariflex.signals)."""
