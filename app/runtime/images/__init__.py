"""Images: the service, the content store, image configs, save/load, and the layers package."""
from app.runtime.images.service import Images

__all__ = ["Images"]
