"""Version numbers berth advertises: its own release and the Docker Engine API range it speaks."""

VERSION = "0.1.0"
API_VERSION = "1.45"
MIN_API_VERSION = "1.24"
