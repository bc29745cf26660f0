"""Development tools: the local Dataverse emulator and the synthetic B2B tenant. Never deployed (see .funcignore)."""
