"""Tests of the site side of the uplink (the pure ``custom_components.cariflex.uplink`` package)."""
