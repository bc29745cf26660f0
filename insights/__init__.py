"""Account-level B2B analytics: account KPIs, cohorts, flows and journey paths (pure domain).

Plain typed records and the current time in, decisions out: no HTTP, no Azure SDK, no environment, no clock.
Filled in by the insights issue; the layering test in `tests/test_layers.py` keeps this package pure.
"""
