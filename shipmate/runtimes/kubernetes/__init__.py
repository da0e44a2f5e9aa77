"""The Kubernetes runtime: a release as objects (objects.py), applied through the official
client."""
