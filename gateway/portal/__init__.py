"""The web portal: Jinja templates and static files next to this package."""
