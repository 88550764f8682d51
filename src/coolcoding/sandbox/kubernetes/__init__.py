"""The Kubernetes runtime: one pod ``exec-{uuid}`` and one volume ``workspace-{uuid}`` per session.

This package's ``boot`` and ``measure`` modules run inside the session pods on the standard
library alone (like ``coolcoding.agent``); nothing here is imported by them.
"""
