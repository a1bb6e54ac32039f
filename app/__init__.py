"""berth: a Docker-compatible container engine. `create_app` builds the daemon's WSGI application.

Flask is imported inside create_app so that the CLI, which lives in this package too (app/cli), never
pays for it.
"""
from __future__ import annotations


def create_app(config=None, engine=None):
    from flask import Flask

    from app.api import register_api
    from app.api.middleware import ApiVersionMiddleware
    from app.config import Config
    from app.engine import Engine
    from app.errors import register_error_handlers

    if engine is None:
        engine = Engine(config or Config.from_env()).start()
    flask_app = Flask("berth")
    flask_app.json.sort_keys = False
    flask_app.json.compact = True
    flask_app.extensions["berth"] = engine
    register_error_handlers(flask_app)
    register_api(flask_app)
    flask_app.wsgi_app = ApiVersionMiddleware(flask_app.wsgi_app)
    return flask_app
