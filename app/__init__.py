"""The aiohttp service that records calls, outcomes and audit: the only writer of the database.

Entry points: :func:`app.factory.create_app`, :func:`app.main.serve`, :func:`app.db.upgrade`.
"""
