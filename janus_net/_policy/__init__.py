"""The policy wing: cancellation and deadlines (Context), the capability and its kernel enforcement, network namespaces, and how a blocking call waits."""
