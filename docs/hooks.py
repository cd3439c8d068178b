"""MkDocs hooks."""
