"""The code that touches the host: kernel facilities a container is confined with (seccomp, …)."""
