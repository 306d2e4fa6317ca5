"""The HTTP API of ``journey serve`` (FastAPI): the same documents as the CLI's ``--json``.

``journey.api.app.create_app(settings)`` builds the application; docs/security.md says who may
call what.
"""
