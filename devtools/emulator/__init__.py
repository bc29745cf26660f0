"""A local Dataverse Web API emulator: a real HTTP server over SQLite, for demos, integration and fault tests."""
