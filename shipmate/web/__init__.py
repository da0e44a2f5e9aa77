"""The web console: server-rendered pages over the use cases, served by the rack's API."""
