"""The service's jobs: sync, events and replay, the pipeline over the mirror, journeys, scoring, segments, writes."""
