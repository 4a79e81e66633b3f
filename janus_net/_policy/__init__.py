"""The policy wing: cancellation and deadlines (Context), the capability and its kernel enforcement.

Also network namespaces, and how a blocking call waits.
"""
