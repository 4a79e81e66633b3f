"""The kernel door: every call that enters the kernel, its one retry loop and its errno tables, the owned descriptor cells, and control messages."""
