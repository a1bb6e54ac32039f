from app.runtime.volumes.service import Volumes

__all__ = ["Volumes"]
