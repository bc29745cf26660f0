"""Account-level B2B analytics (pure domain), in the sense of outbound marketing's account insights and Adobe
Customer Journey Analytics B2B: `timeline` (interactions beside dated milestones, with their containers), `periods`
(UTC calendar periods, weeks from Monday), `kpis` (one account over a range), `cohorts`, `flows`, `paths` (conversion
with fallout) and `scores` (distribution per model).

Plain typed records and the time in, decisions out: no HTTP, no Azure SDK, no environment, no clock; the layering
test in `tests/test_layers.py` keeps this package pure.
"""
