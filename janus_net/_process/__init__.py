"""The process wing: moving sockets between processes (SCM_RIGHTS, hand-over frames), systemd's activation
and notification, and the supervisor behind janus-net run."""
