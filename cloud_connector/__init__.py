"""Cariflex cloud connector: aggregates many Cariflex sites and speaks for them as an OCPI 2.2.1 CPO.

Never imports Home Assistant nor ``custom_components.cariflex``: the sites talk to it over the uplink.
"""
