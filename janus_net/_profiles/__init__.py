"""The profiles: how a socket comes to be (listen, bind, connect, adoption, the address parser, options applied, the step engine, unix socket files)."""
