"""The Dataverse adapter: the one Web API client, its queries, errors, auth and webhook-context decoding."""
