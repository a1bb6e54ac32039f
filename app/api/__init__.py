"""The Docker Engine API: one Flask blueprint per resource. Version prefixes are handled by
app/api/middleware.py before routing, so every route here is registered once, unversioned."""
from __future__ import annotations


def register_api(flask_app) -> None:
    from app.api.container_archive import bp as container_archive_bp
    from app.api.container_attach import bp as container_attach_bp
    from app.api.container_attach_ws import bp as container_attach_ws_bp
    from app.api.container_list import bp as container_list_bp
    from app.api.container_resources import bp as container_resources_bp
    from app.api.commit import bp as commit_bp
    from app.api.containers import bp as containers_bp
    from app.api.exec import bp as exec_bp
    from app.api.images import bp as images_bp
    from app.api.networks import bp as networks_bp
    from app.api.system import bp as system_bp
    from app.api.system_df import bp as system_df_bp
    from app.api.volumes import bp as volumes_bp

    flask_app.register_blueprint(system_bp)
    flask_app.register_blueprint(container_list_bp)      # before <ref> routes: /containers/json
    flask_app.register_blueprint(containers_bp)
    flask_app.register_blueprint(container_attach_bp)
    flask_app.register_blueprint(container_attach_ws_bp)
    flask_app.register_blueprint(container_archive_bp)
    flask_app.register_blueprint(images_bp)
    flask_app.register_blueprint(exec_bp)
    flask_app.register_blueprint(container_resources_bp)
    flask_app.register_blueprint(system_df_bp)
    flask_app.register_blueprint(commit_bp)
    flask_app.register_blueprint(volumes_bp)
    flask_app.register_blueprint(networks_bp)


def current_engine():
    from flask import current_app
    return current_app.extensions["berth"]
