"""Live co-editing: Yjs documents of open files, shared across API replicas (docs/API.md "Co-editing")."""
