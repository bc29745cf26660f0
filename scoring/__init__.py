"""Lead scoring: models as data, rules evaluated by a small interpreter, scores with explanations (pure domain).

Plain typed records and the current time in, decisions out: no HTTP, no Azure SDK, no environment, no clock.
Filled in by the scoring issue; the layering test in `tests/test_layers.py` keeps this package pure.
"""
