"""Segments, account-based customer journeys, tiles and Handlebars personalization (pure domain).

Plain typed records and the current time in, decisions out: no HTTP, no Azure SDK, no environment, no clock.
Filled in by the journeys issue; the layering test in `tests/test_layers.py` keeps this package pure.
"""
