"""The browser playground: static HTML, CSS and ES modules served by `app/playground.py` (package data)."""
