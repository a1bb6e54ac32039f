"""WSGI entry point for running berth's API under another WSGI server.

    BERTH_DATA_ROOT=/var/lib/berth gunicorn -k gthread -b unix:/run/berth.sock wsgi:app

`python cli.py daemon` is the supported way to run berth (it adds the socket handling, hijack support
and graceful shutdown); this module exposes the same application object.
"""
from app import create_app
from app.config import Config

app = create_app(Config.from_env())
